import Foundation
import Testing

/// `sweep` reads bare arrays with the same mapping flags as `simulate`, and gives the same numbers
/// as on the same data recorded as attn-trace v1.
@Suite("sweep on bare arrays")
struct BareSweepTests {
    static let trace = "Examples/traces/smollm2-pseudoimg2x64-gen16-w24"
    static let bare = "Examples/traces/smollm2-layer3-bare.npz"   // layer 3 of `trace`, as numpy arrays
    static let map = ["--attn", "attention", "--colsum", "attn_colsum", "--keys", "keys", "--values", "values", "--queries", "queries",
                      "--token-kind", "token_kind", "--prefill-len", "161", "--layer", "3"]

    struct Doc: Decodable { var rows: [Row] }
    struct Row: Decodable, Hashable {
        var policy: String; var budget_spec: String; var metric: String; var layer: Int?; var head: Int?; var image: Int?
        var value: Double?; var actual_tokens: Double; var nominal_tokens: Int; var eval_row_count: Int
    }

    static func rows(_ dir: URL) throws -> [Row] {
        try JSONDecoder().decode(Doc.self, from: Data(contentsOf: dir.appendingPathComponent("results.json"))).rows
    }

    @Test("the bare .npz and the attn-trace folder give the same layer-3 rows")
    func sameRows() throws {
        let out = CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let args = ["--policies", "h2o,text-prior,lookm,knorm", "--budgets", "0.1,0.3"]
        let a = try CLI.run(["sweep", Self.bare] + Self.map + args + ["-o", out.appendingPathComponent("bare").path], cwd: CLI.repo)
        #expect(a.status == 0, "\(a.stderr)")
        let b = try CLI.run(["sweep", Self.trace] + args + ["-o", out.appendingPathComponent("folder").path], cwd: CLI.repo)
        #expect(b.status == 0, "\(b.stderr)")
        let bare = try Self.rows(out.appendingPathComponent("bare")).filter { $0.layer == 3 }
        let folder = try Self.rows(out.appendingPathComponent("folder")).filter { $0.layer == 3 }
        #expect(bare.count > 100)
        #expect(bare == folder)
    }

    @Test("sweep names a bad mapping flag in one line")
    func badFlag() throws {
        let r = try CLI.run(["sweep", Self.bare, "--attn", "nope", "--policies", "h2o", "-o", CLI.tempDir().path], cwd: CLI.repo)
        #expect(r.status == 2)
        #expect(r.stderr.contains("nope") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }
}
