import Foundation
import Testing

/// Every figure kind, on four kinds of input, passes the layout audit (`--check-layout`: no text
/// or shape off the page, no blank band under the content): the shipped real trace (window rows,
/// pseudo-images), a small synthetic LLaVA-1.5-geometry trace, a 32-head window trace, and the
/// shipped one-layer bare `.npz` (plus the LOOK-M oracle fixture, when present). The figures of a
/// sweep (curves, curves `--match`, ratios) are drawn from a small sweep of each input.
@Suite("figure layout on four inputs", .serialized)
struct FigureLayoutCLITests {
    static let real = RenderCLITests.trace

    /// Synthesises a trace once per run.
    static func synth(_ name: String, _ args: [String]) -> String {
        let dir = CLI.tempDir().appendingPathComponent(name)
        let r = try? CLI.run(["synth", dir.path] + args)
        precondition(r?.status == 0, "synth \(name) failed: \(r?.stderr ?? "")")
        return dir.path
    }
    static let llava = synth(
        "llava",
        [
            "--preset", "llava-1.5", "--layers", "2", "--heads", "4", "--kv-heads", "4", "--head-dim", "32",
            "--grid", "12x12", "--text-len", "100",
        ])
    static let bare = [
        "Examples/traces/smollm2-layer3-bare.npz", "--attn", "attention", "--colsum", "attn_colsum", "--keys", "keys",
        "--values", "values", "--queries", "queries", "--token-kind", "token_kind", "--prefill-len", "161", "--layer", "3",
    ]
    .enumerated().map { $0.offset == 0 ? CLI.repo.appendingPathComponent($0.element).path : $0.element }
    static let window32 = synth(
        "w32",
        [
            "--heads", "32", "--kv-heads", "8", "--last-prefill-rows", "32", "--images", "2", "--grid", "8x8",
            "--text-len", "120", "--layers", "2", "--generate", "8",
        ])

    /// Every figure kind, at a recorded `layer` (nil for one-layer bare arrays).
    static func figures(layer: String?) -> [[String]] {
        let l = layer.map { ["--layer", $0] } ?? []
        return [
            ["heatmap"] + l + ["--mean"],
            ["heatmap"] + l + ["--head", "0"],
            ["heatmap"] + l + ["--all-heads"],
            ["retention", "--policies", "h2o,snapkv,lookm"],
            ["retention", "--policies", "lookm", "--hh-ratio", "0.1", "--recent-ratio", "0.1"],
            ["patches", "--policies", "h2o,snapkv,lookm"],
            ["patches", "--policies", "h2o,snapkv,lookm", "--show", "fate"],
            ["modality", "--policies", "h2o,snapkv,text-prior,lookm"],
            ["merges", "--policy", "lookm"] + l + ["--head", "0"],
            ["merge-flow", "--policies", "lookm,pivot-merge", "--merge-scope", "all,image"],
        ]
    }

    func check(_ figure: [String], trace: [String], name: String) throws {
        let out = CLI.tempDir().appendingPathComponent("f.png")
        let args = ["render", figure[0]] + trace + Array(figure.dropFirst()) + ["--check-layout", "-o", out.path]
        let r = try CLI.run(args)
        #expect(r.status == 0, "\(name) \(figure.joined(separator: " ")): \(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: out.path))
    }

    @Test("the shipped trace", arguments: figures(layer: "3"))
    func shipped(figure: [String]) throws { try check(figure, trace: [Self.real], name: "shipped") }

    @Test("a synthetic LLaVA-1.5-geometry trace", arguments: figures(layer: "1"))
    func llava(figure: [String]) throws { try check(figure, trace: [Self.llava], name: "llava") }

    @Test("a 32-head window trace", arguments: figures(layer: "1"))
    func window(figure: [String]) throws { try check(figure, trace: [Self.window32], name: "w32") }

    @Test("the shipped one-layer bare .npz", arguments: figures(layer: nil))
    func shippedBare(figure: [String]) throws { try check(figure, trace: Self.bare, name: "bare") }

    /// The inputs of the sweep figures: (name, trace and mapping flags, mapping flags alone).
    static let sweepInputs: [String] = ["shipped", "llava", "w32", "bare"]
    static func input(_ name: String) -> (trace: [String], mapping: [String]) {
        switch name {
        case "shipped": return ([real], [])
        case "llava": return ([llava], [])
        case "w32": return ([window32], [])
        default: return (bare, Array(bare.dropFirst()))
        }
    }

    @Test("the figures of a sweep: curves, curves --match, image retention, ratios", arguments: sweepInputs)
    func sweepFigures(name: String) throws {
        let (trace, mapping) = Self.input(name)
        let dir = CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sweep = dir.appendingPathComponent("sweep").path, ratios = dir.appendingPathComponent("ratios").path
        let a = try CLI.run(
            ["sweep"] + trace + [
                "--policies", "full,h2o,snapkv,lookm,oracle", "--budgets", "0.1,0.3",
                "--metrics", "attention_recall,kept_ratio,image_retention", "-o", sweep,
            ])
        #expect(a.status == 0, "\(name) sweep: \(a.stderr)")
        let b = try CLI.run(
            ["sweep"] + trace + [
                "--policies", "lookm", "--hh-ratio", "0.05,0.1,0.2", "--recent-ratio", "0.05,0.1",
                "--metrics", "attention_recall,kept_ratio", "-o", ratios,
            ])
        #expect(b.status == 0, "\(name) ratio sweep: \(b.stderr)")
        for figure in [
            ["curves", sweep, "--metric", "attention_recall"], ["curves", sweep, "--metric", "attention_recall", "--match"] + mapping,
            ["curves", sweep, "--metric", "image_retention"],
            ["ratios", ratios, "--policy", "lookm", "--metric", "attention_recall", "--safe", "attention_recall>=0.95"],
        ] {
            let out = dir.appendingPathComponent("f.png")
            let r = try CLI.run(["render"] + figure + ["--check-layout", "-o", out.path])
            #expect(r.status == 0, "\(name) \(figure.joined(separator: " ")): \(r.stderr)")
            #expect(FileManager.default.fileExists(atPath: out.path))
            try? FileManager.default.removeItem(at: out)
        }
    }

    @Test(
        "the LOOK-M oracle fixture as a bare .npz", .enabled(if: CLI.sharedExists, "needs ../shared beside the project"),
        arguments: figures(layer: nil))
    func bareNPZ(figure: [String]) throws {
        try check(figure, trace: [RenderCLITests.oracle] + RenderCLITests.oracleFlags, name: "npz")
    }

    @Test func theAuditFailsWhenTextLeavesThePage() throws {
        // A title far wider than any page is shrunk only down to 5 pt: the audit must notice.
        let out = CLI.tempDir().appendingPathComponent("f.png")
        let r = try CLI.run([
            "render", "heatmap", Self.real, "--layer", "1", "--title", String(repeating: "x", count: 900),
            "--check-layout", "-o", out.path,
        ])
        #expect(r.status != 0 && r.stderr.contains("--check-layout"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }
}
