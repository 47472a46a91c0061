import Foundation
import Testing

/// Runs each built example program into a temporary folder and checks the PNG it writes.
@Suite("Examples", .serialized)
struct ExamplesTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The example's binary: beside the test bundle, or in the repository's debug build.
    static func binary(_ name: String) -> URL? {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for dir in [here, here.deletingLastPathComponent(), repo.appendingPathComponent(".build/debug")] {
            let u = dir.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return nil
    }

    /// Width and height from a PNG's signature and IHDR chunk, or nil when it is not a PNG.
    static func pngSize(_ data: Data) -> (width: Int, height: Int)? {
        let b = [UInt8](data.prefix(33))
        guard b.count == 33, b[0 ..< 8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A],
              b[8 ..< 12] == [0, 0, 0, 13], b[12 ..< 16] == [0x49, 0x48, 0x44, 0x52] else { return nil }
        func be(_ i: Int) -> Int { b[i ..< i + 4].reduce(0) { $0 << 8 | Int($1) } }
        let bitDepth = b[24], colorType = b[25]
        guard [1, 2, 4, 8, 16].contains(bitDepth), [0, 2, 3, 4, 6].contains(colorType) else { return nil }
        // The file ends with an IEND chunk.
        guard data.count > 45, data.suffix(8).prefix(4) == Data("IEND".utf8) else { return nil }
        return (be(16), be(20))
    }

    @Test("each example exits 0 and writes a PNG", arguments: [
        ("QuickStart", "quickstart-retention.png", "lookm"),
        ("BudgetSweep", "budget-sweep-recall.png", "snapkv"),
        ("ModalityRetention", "modality-retention.png", "keeps"),
    ])
    func example(name: String, png: String, mentions: String) throws {
        let exe = try #require(Self.binary(name), "\(name) is not built (swift build builds every example)")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-example-\(UUID().uuidString)")
        let p = Process()
        p.executableURL = exe
        p.arguments = [out.path]
        p.currentDirectoryURL = Self.repo  // the default trace path is relative to the repository
        let stdout = Pipe(), stderr = Pipe()
        p.standardOutput = stdout
        p.standardError = stderr
        try p.run()
        let o = stdout.fileHandleForReading.readDataToEndOfFile()
        let e = stderr.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(name): \(String(decoding: e, as: UTF8.self))")
        let text = String(decoding: o, as: UTF8.self)
        #expect(text.contains(mentions), "\(text)")
        #expect(text.contains("wrote "))
        let data = try Data(contentsOf: out.appendingPathComponent(png))
        let size = try #require(Self.pngSize(data), "\(png) is not a PNG")
        #expect(size.width >= 600 && size.width <= 3000, "\(size)")
        #expect(size.height >= 300 && size.height <= 3000, "\(size)")
        #expect(data.count > 10_000)
        try? FileManager.default.removeItem(at: out)
    }
}
