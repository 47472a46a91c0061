import Foundation
import Testing

/// `kvscope explore`, `render ratios` and `simulate --json`, end to end on the built binary.
@Suite(.serialized) struct ExploreCLITests {
    static let hh = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3]
    static let recent = [0.02, 0.05, 0.1, 0.2, 0.3]
    static let policies = ["lookm", "text-prior", "h2o", "snapkv"]
    static let metrics = ["attention_recall", "output_error", "kept_ratio", "recall_image", "image_recall"]

    static func list(_ xs: [Double]) -> String { xs.map { "\($0)" }.joined(separator: ",") }

    /// The columns of a result row these tests read (results.json and `simulate --json` share them).
    struct Row: Decodable {
        var policy: String
        var hhRatio: Double?
        var recentRatio: Double?
        var metric: String
        var layer: Int?
        var head: Int?
        var image: Int?
        var value: Double?
        var actualTokens: Double?
        var budgetSpec: String
        var note: String?
        enum CodingKeys: String, CodingKey {
            case policy, hhRatio = "hh_ratio", recentRatio = "recent_ratio", metric, layer, head, image, value
            case actualTokens = "actual_tokens", budgetSpec = "budget_spec", note
        }
    }

    struct Doc: Decodable { var rows: [Row] }

    struct SimDoc: Decodable {
        struct Layer: Decodable { var layer: Int; var nominal: Int; var actual: [Int] }
        var policy: String
        var budget_spec: String
        var layers: [Layer]
        var rows: [Row]?
    }

    static func decodeSim(_ text: String) throws -> SimDoc {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try d.decode(SimDoc.self, from: Data(text.utf8))
    }

    /// Runs the 6 × 5 grid of the four policies on `trace`, checks what explore wrote, and that a
    /// sample of cells (every policy on the diagonal and two corners, or with `quick` three of
    /// them) equals `simulate --json`.
    func exploreMatchesSimulate(_ trace: String, quick: Bool = false) throws {
        let out = CLI.tempDir().appendingPathComponent("explore")
        defer { try? FileManager.default.removeItem(at: out.deletingLastPathComponent()) }
        let r = try CLI.run([
            "explore", trace, "--policies", Self.policies.joined(separator: ","),
            "--hh-ratio", Self.list(Self.hh), "--recent-ratio", Self.list(Self.recent),
            "--metrics", Self.metrics.joined(separator: ","),
            "--safe", "attention_recall>=0.95", "--safe", "output_error<=0.1", "-o", out.path,
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("cheapest safe settings"))
        for p in Self.policies {
            #expect(r.stdout.contains("\n  \(p) "), "the table has a line for \(p)")
            for m in ["attention_recall", "output_error"] {
                let png = out.appendingPathComponent("ratios-\(p)-\(m).png")
                let head = try #require(FileManager.default.contents(atPath: png.path), "\(png.path)")
                #expect(head.starts(with: [0x89, 0x50, 0x4E, 0x47]))
            }
        }
        let rows = try JSONDecoder().decode(Doc.self, from: Data(contentsOf: out.appendingPathComponent("results.json"))).rows
        let all = rows.filter { $0.layer == nil && $0.head == nil }
        #expect(Set(all.map(\.budgetSpec)).count == 30)
        // safe.csv: every listed setting meets both conditions; one cheapest per policy that has a safe setting.
        let csv = try String(contentsOf: out.appendingPathComponent("safe.csv"), encoding: .utf8).split(separator: "\n").map(String.init)
        let header = csv[0].split(separator: ",").map(String.init)
        let col = { (n: String) in header.firstIndex(of: n)! }
        for line in csv.dropFirst() {
            let c = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            if line.contains("no setting is safe") { continue }
            #expect(Double(c[col("attention_recall")])! >= 0.95 && Double(c[col("output_error")])! <= 0.1)
            let hh = Double(c[col("hh_ratio")])!, rr = Double(c[col("recent_ratio")])!
            let a = all.first {
                $0.policy == c[col("policy")] && $0.hhRatio == hh && $0.recentRatio == rr && $0.metric == "attention_recall"
            }
            #expect(a?.value == Double(c[col("attention_recall")]))
        }
        for p in Self.policies {
            let mine = csv.dropFirst().filter { $0.split(separator: ",")[1] == p }
            #expect(!mine.isEmpty, "\(p) has a row in safe.csv")
            let cheapest = mine.filter {
                $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)[col("cheapest")] == "true"
            }
            #expect(cheapest.count == (mine.contains { $0.contains("no setting is safe") } ? 0 : 1))
        }
        // The sample, for every policy.
        var cells: [(Double, Double)] = (0 ..< 5).map { (Self.hh[$0], Self.recent[$0]) }
        cells += [(Self.hh[5], Self.recent[0]), (Self.hh[5], Self.recent[4])]
        if quick { cells = [cells[0], cells[2], cells[5]] }
        for p in Self.policies {
            for (x, y) in cells {
                let s = try CLI.run([
                    "simulate", trace, "--policy", p, "--hh-ratio", "\(x)", "--recent-ratio", "\(y)", "--metrics", "--json",
                ])
                let mine = rows.filter { $0.policy == p && $0.hhRatio == x && $0.recentRatio == y && $0.head == nil }
                if s.status != 0 {
                    // The policy cannot decide at this setting (snapkv needing attention rows the trace
                    // lacks): simulate stops with that reason, and the sweep's cells are empty with it.
                    #expect(s.status == 2 && s.stderr.contains("needs"), "\(p) \(x) \(y): \(s.stderr)")
                    let reason = s.stderr.components(separatedBy: "needs").last!.trimmingCharacters(in: .whitespacesAndNewlines)
                    #expect(!mine.isEmpty && mine.allSatisfy { $0.value == nil && $0.note?.contains(reason) == true }, "\(p) \(x) \(y)")
                    continue
                }
                let sim = try Self.decodeSim(s.stdout)
                let simRows = try #require(sim.rows).filter { $0.head == nil && Self.metrics.contains($0.metric) }
                let kept = mine.filter { Self.metrics.contains($0.metric) }
                #expect(simRows.count == kept.count, "\(p) \(x) \(y): \(simRows.count) vs \(kept.count) rows")
                for a in simRows {
                    let b = kept.first { $0.metric == a.metric && $0.layer == a.layer && $0.image == a.image }
                    #expect(
                        b != nil && b!.value == a.value && b!.actualTokens == a.actualTokens,
                        "\(p) \(x) \(y) \(a.metric) layer \(a.layer.map(String.init) ?? "all")")
                }
            }
        }
        // render ratios draws the same figure from the results.
        let fig = out.deletingLastPathComponent().appendingPathComponent("ratios.svg")
        let rr = try CLI.run([
            "render", "ratios", out.appendingPathComponent("results.json").path, "--policy", "lookm",
            "--metric", "attention_recall", "--safe", "attention_recall>=0.95", "--out", fig.path,
        ])
        #expect(rr.status == 0, "\(rr.stderr)")
        let svg = try String(contentsOf: fig, encoding: .utf8)
        #expect(svg.contains("<svg"))
    }

    @Test func exploreOnTheShippedTrace() throws {
        // 30 layers: three cells per policy keep the debug-build test within a few minutes.
        try exploreMatchesSimulate(CLI.repo.appendingPathComponent("Examples/traces/smollm2-pseudoimg2x64-gen16-w24").path, quick: true)
    }

    @Test func exploreOnASyntheticLlavaTrace() throws {
        let dir = CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let trace = dir.appendingPathComponent("llava")
        let s = try CLI.run([
            "synth", trace.path, "--preset", "llava-1.5", "--layers", "2", "--heads", "4", "--kv-heads", "2",
            "--head-dim", "32", "--grid", "8x8", "--text-len", "120", "--generate", "8",
        ])
        #expect(s.status == 0, "\(s.stderr)")
        try exploreMatchesSimulate(trace.path)
    }

    @Test func noSafeSettingIsAResult() throws {
        let dir = CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let trace = try TestTrace.small().writeTemporaryFolder(roles: ["attn", "k"])
        let out = dir.appendingPathComponent("x")
        let r = try CLI.run([
            "explore", trace.path, "--policies", "h2o", "--hh-ratio", "0.2,0.3", "--recent-ratio", "0.2",
            "--safe", "kept_ratio<0.01", "--per-layer", "-o", out.path,
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("no setting is safe"))
        let csv = try String(contentsOf: out.appendingPathComponent("safe.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 2 && csv.contains("no setting is safe (2 tried"))
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("ratios-h2o-kept_ratio.png").path))
    }

    @Test func badInputIsOneLineAndWritesNothing() throws {
        let dir = CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let trace = try TestTrace.small().writeTemporaryFolder(roles: ["attn", "k"])
        let base = ["explore", trace.path, "--policies", "h2o,snapkv", "--hh-ratio", "0.2,0.3", "--recent-ratio", "0.2"]
        let cases: [(args: [String], flag: String)] = [
            (["--safe", "attention_recall=>0.9"], "--safe"),
            (["--safe", "attention_recall>=x"], "--safe"),
            (["--safe", "recal>=0.9"], "--safe"),
            ([], "--safe"),
            (["--safe", "attention_recall>=0.9", "--param", "windowz=4"], "--param"),
            (["--safe", "attention_recall>=0.9", "--param", "window=-3"], "--param"),
            (["--safe", "attention_recall>=0.9", "--param", "kernel=4,0"], "--param"),
            (["--safe", "attention_recall>=0.9", "--metrics", "output_error"], "--safe"),
        ]
        for (i, c) in cases.enumerated() {
            let out = dir.appendingPathComponent("out\(i)")
            let r = try CLI.run(base + c.args + ["-o", out.path])
            #expect(r.status == 2, "\(c.args)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].contains(c.flag), "\(c.args): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out.path), "\(c.args) wrote \(out.path)")
        }
        // An empty grid: an empty ratio list, and merges that no listed policy takes.
        for args in [
            ["explore", trace.path, "--policies", "h2o", "--hh-ratio", "", "--recent-ratio", "0.2"],
            ["explore", trace.path, "--policies", "lookm", "--merge", "pivotal", "--hh-ratio", "0.2", "--recent-ratio", "0.2"],
        ] {
            let out = dir.appendingPathComponent("empty")
            let r = try CLI.run(args + ["--safe", "attention_recall>=0.9", "-o", out.path])
            #expect(r.status == 2)
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1 && (lines[0].contains("--hh-ratio") || lines[0].contains("--merge")), "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out.path))
        }
        // render ratios: a malformed condition, an unknown policy.
        let r1 = try CLI.run(["render", "ratios", dir.path, "--policy", "lookm", "--safe", "nope"])
        #expect(r1.status == 2 && r1.stderr.split(separator: "\n").count == 1 && r1.stderr.contains("--safe"))
    }

    @Test func simulateJSONWithoutMetricsHasDecisionsOnly() throws {
        let trace = try TestTrace.small().writeTemporaryFolder(roles: ["attn", "k"])
        let r = try CLI.run(["simulate", trace.path, "--policy", "h2o", "--budget", "0.5", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try Self.decodeSim(r.stdout)
        #expect(doc.policy == "h2o" && doc.rows == nil && doc.layers.count == 2)
        #expect(doc.layers.allSatisfy { $0.nominal == 4 && $0.actual == [4, 4] })
    }
}
