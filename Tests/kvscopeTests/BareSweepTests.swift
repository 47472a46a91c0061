import Foundation
import KVTrace
import Testing

/// `sweep` reads bare arrays with the same mapping flags as `simulate`, and gives the same numbers
/// as on the same data recorded as attn-trace v1.
@Suite("sweep on bare arrays")
struct BareSweepTests {
    static let trace = "Examples/traces/smollm2-pseudoimg2x64-gen16-w24"
    static let bare = "Examples/traces/smollm2-layer3-bare.npz"  // layer 3 of `trace`, as numpy arrays
    static let map = [
        "--attn", "attention", "--colsum", "attn_colsum", "--keys", "keys", "--values", "values", "--queries", "queries",
        "--token-kind", "token_kind", "--prefill-len", "161", "--layer", "3",
    ]

    struct Doc: Decodable { var rows: [Row] }
    struct Row: Decodable, Hashable {
        var policy: String; var budget_spec: String; var metric: String; var layer: Int?; var head: Int?; var image: Int?
        var value: Double?; var actual_tokens: Double?; var nominal_tokens: Int; var eval_row_count: Int
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

    @Test("conventional member names are found without flags: the same rows as with every flag")
    func conventionalNames() throws {
        let out = CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let args = ["--policies", "h2o,lookm,snapkv", "--budgets", "0.1,0.3"]
        let a = try CLI.run(["sweep", Self.bare] + Self.map + args + ["-o", out.appendingPathComponent("flags").path], cwd: CLI.repo)
        #expect(a.status == 0, "\(a.stderr)")
        // P and the layer are not in the file: they are the only flags still needed.
        let b = try CLI.run(
            ["sweep", Self.bare, "--prefill-len", "161", "--layer", "3"] + args + ["-o", out.appendingPathComponent("names").path],
            cwd: CLI.repo)
        #expect(b.status == 0, "\(b.stderr)")
        let flags = try Self.rows(out.appendingPathComponent("flags")), names = try Self.rows(out.appendingPathComponent("names"))
        #expect(flags.count > 100)
        #expect(flags == names)
        // The image tokens were found too (token_kind): per-image rows exist.
        #expect(names.contains { $0.metric == "image_retention" && $0.image == 1 })
    }

    @Test("info says which array played which role, and why")
    func infoMembers() throws {
        let found = try CLI.run(["info", Self.bare, "--prefill-len", "161", "--layer", "3", "--skip-checks"], cwd: CLI.repo)
        #expect(found.status == 0, "\(found.stderr)")
        #expect(found.stdout.contains("attn           ← attention  (found by name"), "\(found.stdout)")
        #expect(found.stdout.contains("token_kind     ← token_kind  (found by name"))
        let named = try CLI.run(
            ["info", Self.bare, "--attn", "attention", "--prefill-len", "161", "--layer", "3", "--skip-checks", "--json"], cwd: CLI.repo)
        struct Info: Decodable { struct Member: Decodable { var role: String; var name: String; var origin: String }; var arrays: [Member] }
        let info = try JSONDecoder().decode(Info.self, from: Data(named.stdout.utf8))
        #expect(info.arrays.first { $0.role == "attn" }?.origin == "flag")
        #expect(info.arrays.first { $0.role == "k" }.map { ($0.name, $0.origin) } ?? ("", "") == ("keys", "found by name"))
        #expect(Set(info.arrays.map(\.role)) == ["attn", "attn_colsum", "q", "k", "v", "token_kind"])
    }

    @Test("two candidate names for one role are an error naming both; a flag settles it")
    func ambiguousNames() throws {
        let H = 2, T = 6
        var a = [Float](repeating: 0, count: H * T * T)
        for h in 0 ..< H { for i in 0 ..< T { for j in 0 ... i { a[(h * T + i) * T + j] = 1 / Float(i + 1) } } }
        let url = CLI.tempDir().appendingPathComponent("two.safetensors")
        try SafeTensorsWriter.write(
            [
                TensorData(name: "attn", floats: a, shape: [H, T, T]),
                TensorData(name: "attention", floats: a, shape: [H, T, T]),
            ], to: url)
        let r = try CLI.run(["info", url.path])
        #expect(r.status == 2)
        #expect(
            r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("attn, attention") && r.stderr.contains("--attn"), "\(r.stderr)"
        )
        let ok = try CLI.run(["info", url.path, "--attn", "attention", "--skip-checks"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("attn           ← attention  (--attn)"), "\(ok.stdout)")
    }

    @Test("sweep names a bad mapping flag in one line")
    func badFlag() throws {
        let r = try CLI.run(["sweep", Self.bare, "--attn", "nope", "--policies", "h2o", "-o", CLI.tempDir().path], cwd: CLI.repo)
        #expect(r.status == 2)
        #expect(r.stderr.contains("nope") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }
}
