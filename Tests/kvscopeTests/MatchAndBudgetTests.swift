import Foundation
import Testing

/// `render` takes `simulate`'s budget forms, and `render curves --match` draws the oracle at each
/// policy's own kept counts.
@Suite("render budgets and curves --match")
struct MatchAndBudgetTests {
    static let trace = "Examples/traces/smollm2-pseudoimg2x64-gen16-w24"
    static let bare = "Examples/traces/smollm2-layer3-bare.npz"
    static let mapping = ["--prefill-len", "161", "--layer", "3"]

    struct Simulated: Decodable {
        struct Layer: Decodable { var layer: Int; var nominal: Int; var actual: [Int] }
        var hh: Int; var recent: Int; var nominal: Int; var layers: [Layer]
    }

    static func simulate(_ budget: [String]) throws -> Simulated {
        let r = try CLI.run(["simulate", trace, "--policy", "lookm", "--layers", "0-5", "--json"] + budget, cwd: CLI.repo)
        guard r.status == 0 else { throw Failure(r.stderr) }
        return try JSONDecoder().decode(Simulated.self, from: Data(r.stdout.utf8))
    }

    struct Failure: Error { var text: String; init(_ t: String) { text = t } }

    @Test("a figure drawn with --hh-ratio 0.1 --recent-ratio 0.1 is the figure of simulate's setting")
    func ratioFormsMatchSimulate() throws {
        // simulate: the official pair resolves to hh = r = int(161·0.1) = 16, C = 32; --tokens 32
        // (recent share 0.5) is the same split, so every layer's decision is the same.
        let ratios = try Self.simulate(["--hh-ratio", "0.1", "--recent-ratio", "0.1"])
        let tokens = try Self.simulate(["--tokens", String(ratios.nominal)])
        #expect(ratios.hh == 16 && ratios.recent == 16 && ratios.nominal == 32)
        #expect(ratios.layers.map(\.actual) == tokens.layers.map(\.actual))
        let dir = CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        func draw(_ figure: [String], _ budget: [String], _ name: String) throws -> Data {
            let out = dir.appendingPathComponent(name)
            let r = try CLI.run(["render"] + figure + budget + ["--title", "t", "-o", out.path], cwd: CLI.repo)
            guard r.status == 0 else { throw Failure(r.stderr) }
            return try Data(contentsOf: out)
        }
        let figures: [[String]] = [
            ["retention", Self.trace, "--policies", "lookm,h2o", "--layers", "0-5"],
            ["patches", Self.trace, "--policies", "lookm", "--layers", "0-5", "--show", "fate"],
            ["merges", Self.trace, "--policy", "lookm", "--layer", "3"],
        ]
        for (i, f) in figures.enumerated() {
            let a = try draw(f, ["--hh-ratio", "0.1", "--recent-ratio", "0.1"], "a\(i).png")
            let b = try draw(f, ["--tokens", String(ratios.nominal)], "b\(i).png")
            let d = try draw(f, ["--tokens", "48"], "d\(i).png")
            #expect(a == b, "render \(f[0]): --hh-ratio/--recent-ratio and --tokens \(ratios.nominal) differ")
            #expect(a != d, "render \(f[0]): --tokens 48 draws the same figure as C = 32")
        }
        // Budget flags are validated as simulate validates them.
        let bad = try CLI.run(["render", "retention", Self.trace, "--policies", "lookm", "--hh-ratio", "0.1"], cwd: CLI.repo)
        #expect(bad.status == 2 && bad.stderr.contains("--hh-ratio and --recent-ratio go together"), "\(bad.stderr)")
        let two = try CLI.run(["render", "merges", Self.trace, "--layer", "3", "--budget", "0.2", "--tokens", "9"], cwd: CLI.repo)
        #expect(two.status == 2 && two.stderr.contains("only one of --budget, --tokens"), "\(two.stderr)")
    }

    struct Doc: Decodable {
        struct Row: Decodable {
            var policy: String; var budget: Double?; var metric: String; var layer: Int?; var head: Int?; var value: Double?
        }
        var rows: [Row]
    }

    @Test("curves --match: the oracle at each policy's own kept counts bounds the policy; at C it is the oracle")
    func matchedOracle() throws {
        let dir = CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sweep = dir.appendingPathComponent("sweep")
        let s = try CLI.run(
            ["sweep", Self.bare] + Self.mapping + [
                "--policies", "h2o,text-prior,lookm,oracle", "--budgets", "0.1,0.3",
                "--metrics", "attention_recall,kept_ratio", "-o", sweep.path,
            ], cwd: CLI.repo)
        #expect(s.status == 0, "\(s.stderr)")
        let png = dir.appendingPathComponent("m.png")
        let r = try CLI.run(
            ["render", "curves", sweep.path, "--metric", "attention_recall", "--match"] + Self.mapping + [
                "-o", png.path, "--check-layout",
            ], cwd: CLI.repo)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: png.path))
        // The table: policy, position, kept_ratio, policy_value, oracle_value.
        var table: [String: [Double: (kept: Double, policy: Double, oracle: Double)]] = [:]
        for line in r.stdout.split(separator: "\n") {
            let f = line.split(separator: " ").map(String.init)
            guard f.count == 5, let b = Double(f[1]), let k = Double(f[2]), let p = Double(f[3]), let o = Double(f[4]) else { continue }
            table[f[0], default: [:]][b] = (k, p, o)
        }
        #expect(Set(table.keys) == ["h2o", "text-prior", "lookm"], "\(r.stdout)")
        let rows = try JSONDecoder().decode(Doc.self, from: Data(contentsOf: sweep.appendingPathComponent("results.json"))).rows
        func plainOracle(_ b: Double) -> Double? {
            rows.first { $0.policy == "oracle" && $0.budget == b && $0.metric == "attention_recall" && $0.layer == nil && $0.head == nil }?
                .value
        }
        for b in [0.1, 0.3] {
            for p in ["h2o", "text-prior", "lookm"] {
                guard let v = table[p]?[b] else { Issue.record("\(p) at \(b): no matched point"); continue }
                // No eviction at the same counts has a higher attention recall.
                #expect(v.oracle >= v.policy - 1e-12, "\(p) at \(b): oracle \(v.oracle) < policy \(v.policy)")
            }
            // h2o keeps exactly C in every head: its matched oracle is the plain oracle at b.
            let h = try #require(table["h2o"]?[b])
            let plain = try #require(plainOracle(b))
            #expect(abs(h.oracle - plain) < 1e-12, "h2o at \(b): matched \(h.oracle), oracle \(plain)")
            // text-prior keeps every text token (at b = 0.1 more than C: 33 of 161): its matched bound
            // lies above the plain one exactly when it keeps more.
            let t = try #require(table["text-prior"]?[b])
            #expect(t.kept >= h.kept && t.oracle >= plain - 1e-12)
            if b == 0.1 {
                #expect(
                    t.kept > h.kept && t.oracle > plain, "text-prior at \(b): kept \(t.kept) vs \(h.kept), bound \(t.oracle) vs \(plain)")
            }
        }
        // --trace and the mapping flags only go with --match.
        let bad = try CLI.run(["render", "curves", sweep.path, "--prefill-len", "161"], cwd: CLI.repo)
        #expect(bad.status == 2 && bad.stderr.contains("--match"), "\(bad.stderr)")
    }
}
