import Foundation
import Testing
import KVTestSupport

/// Runs each built example program into a temporary folder and checks the PNG it writes.
@Suite("Examples", .serialized)
struct ExamplesTests {
    static let repo = CLI.repo

    /// Width and height from a PNG's signature and IHDR chunk, or nil when it is not a PNG.
    static func pngSize(_ data: Data) -> (width: Int, height: Int)? {
        let b = [UInt8](data.prefix(33))
        guard b.count == 33, b[0 ..< 8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A],
            b[8 ..< 12] == [0, 0, 0, 13], b[12 ..< 16] == [0x49, 0x48, 0x44, 0x52]
        else { return nil }
        func be(_ i: Int) -> Int { b[i ..< i + 4].reduce(0) { $0 << 8 | Int($1) } }
        let bitDepth = b[24], colorType = b[25]
        guard [1, 2, 4, 8, 16].contains(bitDepth), [0, 2, 3, 4, 6].contains(colorType) else { return nil }
        // The file ends with an IEND chunk.
        guard data.count > 45, data.suffix(8).prefix(4) == Data("IEND".utf8) else { return nil }
        return (be(16), be(20))
    }

    @Test(
        "each example exits 0 and writes a PNG",
        arguments: [
            ("QuickStart", "quickstart-retention.png", "lookm"),
            ("BudgetSweep", "budget-sweep-recall.png", "snapkv"),
            ("ModalityRetention", "modality-retention.png", "keeps"),
        ])
    func example(name: String, png: String, mentions: String) throws {
        let exe = try #require(CLI.product(name), "\(name) is not built (swift build builds every example)")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-example-\(UUID().uuidString)")
        // The default trace path is relative to the repository.
        let r = try CLI.run([out.path], cwd: Self.repo, executable: exe)
        #expect(r.status == 0, "\(name): \(r.stderr)")
        #expect(r.stdout.contains(mentions), "\(r.stdout)")
        #expect(r.stdout.contains("wrote "))
        let data = try Data(contentsOf: out.appendingPathComponent(png))
        let size = try #require(Self.pngSize(data), "\(png) is not a PNG")
        #expect(size.width >= 600 && size.width <= 3000, "\(size)")
        #expect(size.height >= 300 && size.height <= 3000, "\(size)")
        #expect(data.count > 10_000)
        try? FileManager.default.removeItem(at: out)
    }
}
