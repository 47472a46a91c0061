import Foundation
import Testing

/// Every `--help` example runs on files shipped in the repository.
///
/// The examples are read from the commands themselves (each command's static `examples` list, from
/// which its `--help` text is built), through the hidden `kvscope help-examples`, never scraped from
/// the wrapped help text. Each command's examples run in order, from a scratch folder that holds
/// only a link to the repository's `Examples/`: inputs resolve to the shipped files, and every
/// output lands under the scratch `Output/`.
@Suite("--help examples")
struct HelpExampleTests {
    struct Entry: Decodable, Sendable {
        var command: String
        var leaf: Bool
        var examples: [Example]
    }
    struct Example: Decodable, Sendable {
        var arguments: [String]
        var note: String?
    }

    static func entries() throws -> [Entry] {
        let r = try CLI.run(["help-examples"])
        guard r.status == 0 else { throw CLIFailure("help-examples exited \(r.status): \(r.stderr)") }
        return try JSONDecoder().decode([Entry].self, from: Data(r.stdout.utf8))
    }

    struct CLIFailure: Error, CustomStringConvertible {
        var description: String
        init(_ s: String) { description = s }
    }

    /// Whitespace runs and `\` line continuations collapsed to one space.
    static func normalized(_ s: String) -> String {
        s.replacingOccurrences(of: "\\\n", with: " ").split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ")
    }

    @Test("every command has examples; they name shipped inputs and write only under Output/")
    func declared() throws {
        let entries = try Self.entries()
        #expect(entries.count >= 15, "the walk found \(entries.count) commands")
        #expect(entries.contains { $0.command == "render curves" })
        for e in entries where e.leaf {
            #expect(!e.examples.isEmpty, "\(e.command): no --help example")
            for x in e.examples {
                for a in x.arguments where a.hasPrefix("Examples/") {
                    #expect(
                        FileManager.default.fileExists(atPath: CLI.repo.appendingPathComponent(a).path), "\(e.command): \(a) is not shipped"
                    )
                }
                for a in x.arguments
                where a.contains("/") && !(a.first?.isNumber ?? false) && !a.hasPrefix("Examples/") && !a.hasPrefix("Output/") {
                    Issue.record("\(e.command): \(a) is neither a shipped input nor under Output/")
                }
            }
        }
    }

    @Test("each command's --help shows its examples")
    func shownInHelp() throws {
        for e in try Self.entries() where !e.examples.isEmpty {
            let help = try CLI.run(e.command.split(separator: " ").map(String.init) + ["--help"])
            #expect(help.status == 0)
            let text = Self.normalized(help.stdout)
            for x in e.examples {
                let line = Self.normalized(
                    (["kvscope"] + x.arguments.map { $0.contains(where: { "<>|&;*?()[]$'\" ".contains($0) }) ? "'\($0)'" : $0 }).joined(
                        separator: " "))
                #expect(text.contains(line), "\(e.command) --help does not show: \(line)")
            }
        }
    }

    @Test("every example exits 0 from the repository root", .timeLimit(.minutes(6)))
    func everyExampleRuns() throws {
        let entries = try Self.entries().filter { !$0.examples.isEmpty }
        // Two workers take commands from one queue; a command's examples run in order in its own folder.
        let lock = NSLock()
        nonisolated(unsafe) var next = 0
        nonisolated(unsafe) var failures: [String] = []
        nonisolated(unsafe) var ran = 0
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            while true {
                lock.lock()
                let i = next
                next += 1
                lock.unlock()
                guard i < entries.count else { return }
                let e = entries[i]
                let dir = CLI.tempDir()
                defer { try? FileManager.default.removeItem(at: dir) }
                do {
                    try FileManager.default.createSymbolicLink(
                        at: dir.appendingPathComponent("Examples"),
                        withDestinationURL: CLI.repo.appendingPathComponent("Examples"))
                    for x in e.examples {
                        let r = try CLI.run(x.arguments, cwd: dir)
                        lock.lock()
                        ran += 1
                        if r.status != 0 {
                            failures.append("kvscope \(x.arguments.joined(separator: " ")) → \(r.status): \(r.stderr.suffix(300))")
                        }
                        lock.unlock()
                        if r.status != 0 { break }
                    }
                    let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0 != "Examples" && $0 != "Output" }
                    if !left.isEmpty {
                        lock.lock()
                        failures.append("\(e.command): examples wrote outside Output/: \(left.sorted())")
                        lock.unlock()
                    }
                } catch {
                    lock.lock()
                    failures.append("\(e.command): \(error)")
                    lock.unlock()
                }
            }
        }
        #expect(ran >= entries.count, "only \(ran) examples ran")
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }
}
