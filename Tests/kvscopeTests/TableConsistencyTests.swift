import Foundation
import KVTrace
import Testing

/// Numbers that mean one thing everywhere: `cache_bytes` is missing (not 0) when the head
/// dimension is unknown, `simulate`'s merges are a mean over KV heads like its kept counts, and
/// `synth` names its stored-row window so that no other command's flag shares the name.
@Suite("simulate tables and synth flags")
struct TableConsistencyTests {
    static let trace = "Examples/traces/smollm2-pseudoimg2x64-gen16-w24"

    /// Attention rows only ([H, T, T] causal uniform), as a lone .npy: D is unknown.
    static func attentionOnly() throws -> URL {
        let H = 2, T = 12
        var a = [Float](repeating: 0, count: H * T * T)
        for h in 0 ..< H { for i in 0 ..< T { for j in 0 ... i { a[(h * T + i) * T + j] = 1 / Float(i + 1) } } }
        let url = CLI.tempDir().appendingPathComponent("attn.npy")
        try NPYWriter.write(TensorData(name: "attn", floats: a, shape: [H, T, T]), to: url)
        return url
    }

    struct Report: Decodable {
        struct Layer: Decodable { var layer: Int; var actual: [Int]; var merges: Double }
        struct Row: Decodable { var metric: String; var layer: Int?; var value: Double?; var note: String? }
        var layers: [Layer]
        var rows: [Row]?
    }

    @Test("cache_bytes without keys is missing with a note, in simulate and sweep")
    func cacheBytesWithoutD() throws {
        let npy = try Self.attentionOnly()
        let r = try CLI.run(["simulate", npy.path, "--prefill-len", "8", "--policy", "h2o", "--budget", "0.5", "--metrics", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8))
        let bytes = (report.rows ?? []).filter { $0.metric == "cache_bytes" }
        #expect(bytes.count == 2)  // layer 0 and all layers
        for b in bytes {
            #expect(b.value == nil, "cache_bytes = \(b.value ?? -1) with D = 0")
            #expect(b.note?.contains("head dimension") == true, "\(b.note ?? "no note")")
        }
        // kept_tokens is still reported.
        #expect((report.rows ?? []).contains { $0.metric == "kept_tokens" && $0.value == 4 })
        let out = CLI.tempDir().appendingPathComponent("sweep")
        let s = try CLI.run([
            "sweep", npy.path, "--prefill-len", "8", "--policies", "h2o", "--budgets", "0.5", "--metrics", "cache_bytes,kept_tokens", "-o",
            out.path,
        ])
        #expect(s.status == 0, "\(s.stderr)")
        let csv = try String(contentsOf: out.appendingPathComponent("results.csv"), encoding: .utf8)
        let lines = csv.split(separator: "\n").filter { $0.contains(",cache_bytes,") }
        #expect(lines.count == 2)
        #expect(lines.allSatisfy { $0.contains("head dimension") }, "\(lines)")
    }

    @Test("simulate's merges are a mean over KV heads, in the table and in --json")
    func mergesMean() throws {
        let r = try CLI.run(["simulate", Self.trace, "--policy", "lookm", "--budget", "0.2", "--layers", "2-3", "--json"], cwd: CLI.repo)
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8))
        let t = try CLI.run(["simulate", Self.trace, "--policy", "lookm", "--budget", "0.2", "--layers", "2-3"], cwd: CLI.repo)
        #expect(t.status == 0)
        // Per KV head, lookm merges every evicted token it does not keep: evicted = P − kept,
        // so the mean over the 3 KV heads is at most P, where the old sum reached 3·P.
        let P = 161
        for l in report.layers {
            #expect(l.merges > 0 && l.merges <= Double(P), "layer \(l.layer): merges \(l.merges)")
            let meanKept = Double(l.actual.reduce(0, +)) / Double(l.actual.count)
            #expect(l.merges <= Double(P) - meanKept + 1e-9, "layer \(l.layer): merges \(l.merges) > evicted \(Double(P) - meanKept)")
            // The table's last column is the same number.
            let row = t.stdout.split(separator: "\n").first { $0.hasPrefix("\(l.layer) ") }
            let shown = row.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
            #expect(shown.map { abs($0 - l.merges) <= 0.05 } == true, "table row \(row ?? "missing") vs \(l.merges)")
        }
    }

    @Test("synth: --last-prefill-rows names the stored window; --window is a hidden alias")
    func synthWindow() throws {
        let help = try CLI.run(["synth", "--help"])
        #expect(help.stdout.contains("--last-prefill-rows"))
        #expect(!help.stdout.contains("--window "), "synth --help still shows --window")
        let dir = CLI.tempDir()
        let args = ["--preset", "tiny", "--layers", "1"]
        let a = try CLI.run(["synth", dir.appendingPathComponent("a").path] + args + ["--last-prefill-rows", "4"])
        let b = try CLI.run(["synth", dir.appendingPathComponent("b").path] + args + ["--window", "4"])
        #expect(a.status == 0 && b.status == 0, "\(a.stderr)\(b.stderr)")
        let ia = try CLI.run(["info", dir.appendingPathComponent("a").path, "--json", "--skip-checks"])
        let ib = try CLI.run(["info", dir.appendingPathComponent("b").path, "--json", "--skip-checks"])
        struct Info: Decodable {
            struct Rows: Decodable, Equatable { var start: Int; var stop: Int }; var query_rows: Rows; var prefill_len: Int
        }
        let x = try JSONDecoder().decode(Info.self, from: Data(ia.stdout.utf8))
        let y = try JSONDecoder().decode(Info.self, from: Data(ib.stdout.utf8))
        #expect(x.query_rows == y.query_rows)
        #expect(x.query_rows.start == x.prefill_len - 4)
        let both = try CLI.run(["synth", dir.appendingPathComponent("c").path] + args + ["--last-prefill-rows", "4", "--window", "4"])
        #expect(both.status == 2 && both.stderr.contains("--last-prefill-rows"), "\(both.stderr)")
    }
}
