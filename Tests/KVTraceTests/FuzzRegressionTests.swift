import Foundation
import Testing
@testable import KVTrace

/// Replays every input kept under `Fixtures/fuzz-regressions/<target>/` through the same driver the
/// libFuzzer targets use (`ReaderExercise`): the hand-made reproducers of the hostile-input issue
/// (`issue10-*`, each must be refused with one-line errors; `valid-*` must read without error) and
/// every crash `Scripts/fuzz.sh` ever saved (`crash-*`: must no longer trap, and any error is one line).
@Suite("fuzz regressions")
struct FuzzRegressionTests {
    static let root = Paths.fixtures.appendingPathComponent("fuzz-regressions")

    static var cases: [String] {
        ReaderExercise.targets.flatMap { t in
            ((try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(t).path)) ?? [])
                .filter { !$0.hasPrefix(".") }.sorted().map { "\(t)/\($0)" }
        }
    }

    @Test func everyTargetHasReproducers() {
        for t in ReaderExercise.targets {
            #expect(Self.cases.contains { $0.hasPrefix(t + "/issue10-") || $0.hasPrefix(t + "/valid-issue10-") }, "no reproducer for \(t)")
        }
    }

    @Test("replay", arguments: cases)
    func replay(_ path: String) throws {
        let target = String(path.split(separator: "/")[0])
        let name = String(path.split(separator: "/")[1])
        let data = try Data(contentsOf: Self.root.appendingPathComponent(path))
        let started = Date()
        let errors = ReaderExercise.run(target, data)
        #expect(Date().timeIntervalSince(started) < 5, "\(path) took too long")
        for e in errors {
            #expect(!e.isEmpty && !e.contains("\n") && !e.contains("\r"), "\(path): not one line: \(e)")
            #expect(!e.contains("Error Domain="), "\(path): NSError text: \(e)")
        }
        if name.hasPrefix("issue10-") { #expect(!errors.isEmpty, "\(path) must be refused") }
        if name.hasPrefix("valid-") { #expect(errors.isEmpty, "\(path) must read: \(errors)") }
    }

    @Test func zipBombIsRefusedFast() throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent("npz/issue10-bomb.npz"))
        let started = Date()
        let errors = ReaderExercise.npz(data)
        #expect(Date().timeIntervalSince(started) < 1)
        #expect(errors.first?.contains("npy header declares 136 bytes") == true, "\(errors)")
    }

    @Test func corruptMemberFailsItsCRC() throws {
        let errors = ReaderExercise.npz(try Data(contentsOf: Self.root.appendingPathComponent("npz/issue10-crc.npz")))
        #expect(errors.first?.contains("CRC-32 mismatch") == true, "\(errors)")
    }

    @Test func recorderMayBeAnyJSONValue() throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent("tracejson/valid-issue10-recorder-string.json"))
        let info = try TraceMetadata.parse(data, file: "trace.json").info
        #expect(info.extras["recorder"] == "\"exporter v1\"")
    }

    @Test func controlCharactersAreEscaped() {
        #expect("a\nb\u{1B}[31m".escapedForMessage == "a\\nb\\u{1B}[31m")
        #expect("plain".escapedForMessage == "plain")
    }
}
