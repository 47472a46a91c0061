import Foundation
import KVTrace
import Testing

/// `simulate --decoding`, `render decoding` and `compare` from the command line.
@Suite struct DecodingCLITests {
    static let shipped = CLI.repo.appendingPathComponent("Examples/traces/smollm2-pseudoimg2x64-gen16-w24").path

    static func expectOneLine(_ r: CLI.Result, naming what: String, _ args: [String]) {
        let lines = r.stderr.split(separator: "\n")
        #expect(r.status == 2, "\(args): \(r.stderr)")
        #expect(lines.count == 1 && lines[0].hasPrefix("kvscope: error:") && lines[0].contains(what), "\(args): \(r.stderr)")
    }

    /// A bare `[H, T, T]` attention array: P = T, so no generated rows.
    static func prefillOnly() throws -> URL {
        let T = 6, H = 2
        var a = [Float](repeating: 0, count: H * T * T)
        for h in 0 ..< H { for i in 0 ..< T { for j in 0 ... i { a[(h * T + i) * T + j] = 1 / Float(i + 1) } } }
        let url = CLI.tempDir().appendingPathComponent("attn.npy")
        try NPYWriter.write(TensorData(name: "attn", floats: a, shape: [H, T, T], as: .f32), to: url)
        return url
    }

    @Test func decodingWithoutGeneratedRowsIsOneLine() throws {
        let t = try Self.prefillOnly().path
        for args in [
            ["simulate", t, "--policy", "h2o", "--budget", "0.5", "--decoding"],
            ["simulate", t, "--policy", "h2o", "--budget", "0.5", "--evict-per-step"],
            ["render", "decoding", t, "--policies", "h2o", "--budget", "0.5", "-o", CLI.tempDir().appendingPathComponent("d.png").path],
        ] {
            Self.expectOneLine(try CLI.run(args), naming: "generated rows", args)
        }
        let bad = ["simulate", Self.shipped, "--policy", "h2o", "--budget", "0.2", "--recompress-every", "0"]
        Self.expectOneLine(try CLI.run(bad), naming: "--recompress-every", bad)
    }

    @Test func simulateDecodingWritesAStepColumn() throws {
        let out = CLI.tempDir().appendingPathComponent("steps.csv")
        let r = try CLI.run([
            "simulate", Self.shipped, "--policy", "h2o", "--budget", "0.2", "--layers", "0", "--evict-per-step",
            "-o", out.path,
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("evict one per step"))
        let lines = try String(contentsOf: out, encoding: .utf8).split(separator: "\n")
        let header = lines[0].split(separator: ",").map(String.init)
        let step = try #require(header.firstIndex(of: "step"))
        let steps = Set(lines.dropFirst().map { Int($0.split(separator: ",", omittingEmptySubsequences: false)[step]) })
        #expect(steps == Set((1 ... 16).map { Optional($0) }), "the shipped trace has 16 generated rows")
    }

    /// `--evict-per-step` against H2O's reference code: `Scripts/h2o-decode-reference.py` fed the
    /// shipped trace's rows to `H2OKVCache_LayerWise` (FMInference/H2O) step by step and recorded
    /// attention_recall per step on four layers; the replay must give the same series.
    @Test func evictPerStepMatchesH2OReferenceCode() throws {
        struct Fixture: Decodable { var budget: Double; var gqa: String; var attention_recall: [String: [Double]] }
        let url = CLI.repo.appendingPathComponent("Tests/kvscopeTests/Fixtures/h2o-decode-reference.json")
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        let layers = fixture.attention_recall.keys.compactMap(Int.init).sorted()
        #expect(layers.count == 4)
        let out = CLI.tempDir().appendingPathComponent("evict.csv")
        let r = try CLI.run([
            "simulate", Self.shipped, "--policy", "h2o", "--budget", String(fixture.budget), "--gqa", fixture.gqa,
            "--layers", layers.map(String.init).joined(separator: ","), "--evict-per-step", "--metrics", "-o", out.path,
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = try String(contentsOf: out, encoding: .utf8).split(separator: "\n").map {
            $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        }
        let col = Dictionary(uniqueKeysWithValues: lines[0].enumerated().map { ($1, $0) })
        for l in layers {
            let expected = fixture.attention_recall[String(l)]!
            var got: [Int: Double] = [:]
            for cells in lines.dropFirst()
            where cells[col["metric"]!] == "attention_recall" && cells[col["layer"]!] == String(l) && cells[col["head_index"]!].isEmpty {
                got[Int(cells[col["step"]!])!] = Double(cells[col["value"]!])
            }
            #expect(got.count == expected.count, "layer \(l)")
            for (k, e) in expected.enumerated() {
                let v = try #require(got[k + 1], "layer \(l) step \(k + 1)")
                #expect(abs(v - e) < 1e-12, "layer \(l) step \(k + 1): \(v) vs reference \(e)")
            }
        }
    }

    @Test func renderDecodingLaysOut() throws {
        let out = CLI.tempDir().appendingPathComponent("decoding.png")
        let r = try CLI.run([
            "render", "decoding", Self.shipped, "--policies", "h2o,streaming", "--budget", "0.2", "--layers", "0-1",
            "--recompress-every", "4", "--check-layout", "-o", out.path,
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: out.path))
    }

    /// `compare` on KVScope's own `--save-cache` output: every head's sets agree (Jaccard 1) and the
    /// recalls are equal; the same file under another policy differs.
    @Test func compareOwnCacheIsOverlapOne() throws {
        let dir = CLI.tempDir().appendingPathComponent("cache")
        let s = try CLI.run([
            "simulate", Self.shipped, "--policy", "snapkv", "--budget", "0.2", "--layers", "0-2", "--save-cache", dir.path,
        ])
        #expect(s.status == 0, "\(s.stderr)")
        struct Row: Decodable { var layer: Int; var head: Int; var jaccard: Double; var recall_kvscope: Double?; var recall_other: Double? }
        struct Doc: Decodable { var rows: [Row] }
        for kept in [dir.path, dir.appendingPathComponent("layer_001.safetensors").path] {
            let r = try CLI.run(["compare", kept, Self.shipped, "--policy", "snapkv", "--budget", "0.2", "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            let doc = try JSONDecoder().decode(Doc.self, from: Data(r.stdout.utf8))
            #expect(doc.rows.count == (kept == dir.path ? 9 : 3))
            for row in doc.rows {
                #expect(row.jaccard == 1, "layer \(row.layer) head \(row.head)")
                #expect(row.recall_kvscope != nil && row.recall_kvscope == row.recall_other)
            }
        }
        // Per query head: each query head's row is its KV head's set (the trace maps 9 query heads to 3).
        let saved = try SafeTensorsFile(dir.appendingPathComponent("layer_000.safetensors"))
        let kv = try #require(saved.tensors["kept"])
        let C = kv.shape[1]
        let perQuery = (0 ..< 9).flatMap { h in (0 ..< C).map { kv.int(at: (h / 3) * C + $0) } }
        let q = dir.deletingLastPathComponent().appendingPathComponent("per-query.npy")
        try NPYWriter.write(TensorData(name: "kept", ints: perQuery, shape: [9, C]), to: q)
        let r = try CLI.run(["compare", q.path, Self.shipped, "--policy", "snapkv", "--budget", "0.2", "--layer", "0", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let byQuery = try JSONDecoder().decode(Doc.self, from: Data(r.stdout.utf8))
        #expect(
            byQuery.rows.count == 9
                && byQuery.rows.allSatisfy { $0.jaccard == 1 && $0.recall_other != nil && $0.recall_other == $0.recall_kvscope })
        #expect(r.stdout.contains("\"head_kind\" : \"query\""))
        let other = try CLI.run(["compare", dir.path, Self.shipped, "--policy", "h2o", "--budget", "0.2", "--json"])
        let doc = try JSONDecoder().decode(Doc.self, from: Data(other.stdout.utf8))
        #expect(doc.rows.contains { $0.jaccard < 1 })
    }

    @Test func keptFileThatDoesNotFitIsOneLine() throws {
        let dir = CLI.tempDir()
        func npy(_ name: String, _ v: [Int], _ shape: [Int]) throws -> String {
            let u = dir.appendingPathComponent(name)
            try NPYWriter.write(TensorData(name: "kept", ints: v, shape: shape), to: u)
            return u.path
        }
        let cases: [(String, String)] = [
            (try npy("heads.npy", Array(0 ..< 20), [5, 4]), "heads"),  // 5 heads: the trace has 3 KV / 9 query heads
            (try npy("layers.npy", Array(repeating: 1, count: 7 * 3 * 2), [7, 3, 2]), "layers"),  // 7 layers of 30
            (try npy("range.npy", [0, 1, 500, 3, 4, 5], [3, 2]), "outside the prefix"),
            (try npy("rank.npy", [0, 1, 2], [3]), "shape"),
        ]
        for (file, what) in cases {
            let args = ["compare", file, Self.shipped, "--policy", "h2o", "--budget", "0.2", "--layer", "0"]
            Self.expectOneLine(try CLI.run(args), naming: what, args)
        }
        let twoD = ["compare", try npy("nolayer.npy", Array(0 ..< 6), [3, 2]), Self.shipped, "--policy", "h2o", "--budget", "0.2"]
        Self.expectOneLine(try CLI.run(twoD), naming: "--layer", twoD)
    }
}
