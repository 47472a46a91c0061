import Foundation
import KVTrace
import Testing

/// `kvscope render …` end to end, on the shipped real trace (177 tokens, 2 pseudo-images).
@Suite("kvscope render")
struct RenderCLITests {
    static let trace = CLI.repo.appendingPathComponent("Examples/traces/smollm2-pseudoimg2x64-gen16-w24").path

    /// Width and height from a PNG's IHDR, or nil when the bytes are not a PNG.
    static func pngSize(_ url: URL) -> (width: Int, height: Int)? {
        guard let d = FileManager.default.contents(atPath: url.path), d.count > 24 else { return nil }
        let b = [UInt8](d.prefix(24))
        guard b[0 ..< 8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], b[12 ..< 16] == [0x49, 0x48, 0x44, 0x52] else { return nil }
        func be(_ i: Int) -> Int { b[i ..< i + 4].reduce(0) { $0 << 8 | Int($1) } }
        return (be(16), be(20))
    }

    /// Runs `render args… --out dir/name` and checks exit 0, one "wrote" line, and the file.
    @discardableResult
    static func renders(_ args: [String], name: String, in dir: URL) throws -> URL {
        let out = dir.appendingPathComponent(name)
        let r = try CLI.run(["render"] + args + ["--out", out.path])
        #expect(r.status == 0, "\(args): \(r.stderr)")
        #expect(r.stdout.contains("wrote \(out.path)"), "\(r.stdout)")
        #expect(FileManager.default.fileExists(atPath: out.path), "\(name) missing")
        return out
    }

    @Test(
        "each figure renders a plausible PNG",
        arguments: [
            ["heatmap", "TRACE", "--layer", "3"],
            ["heatmap", "TRACE", "--layer", "3", "--head", "2", "--norm", "linear", "--cmap", "magma"],
            ["heatmap", "TRACE", "--layer", "0", "--all-heads", "--vmin", "auto"],
            ["heatmap", "TRACE", "--layer", "5", "--mean", "--rows", "160:177", "--cols", "100:177", "--norm", "power"],
            ["retention", "TRACE", "--policies", "h2o,snapkv,lookm", "--budget", "0.2"],
            ["retention", "TRACE", "--policies", "text-prior", "--budget", "0.3", "--layers", "0-3", "--fidelity", "intended"],
            ["patches", "TRACE", "--policies", "h2o,lookm", "--budget", "0.2"],
            ["modality", "TRACE"],
            ["modality", "TRACE", "--policies", "h2o,snapkv,lookm", "--budget", "0.2", "--layers", "0-9"],
            ["merges", "TRACE", "--policy", "lookm", "--budget", "0.2", "--layer", "3", "--head", "1"],
            ["merges", "TRACE", "--policy", "h2o", "--merge", "pivotal", "--layer", "2", "--range", "0:100"],
            ["merge-flow", "TRACE", "--policies", "lookm,pivot-merge", "--budget", "0.2", "--layers", "0-3"],
            ["merge-flow", "TRACE", "--policies", "lookm", "--merge-scope", "all,modality", "--weight", "tokens", "--layers", "0-3"],
        ])
    func figurePNG(args: [String]) throws {
        let dir = CLI.tempDir()
        let out = try Self.renders(args.map { $0 == "TRACE" ? Self.trace : $0 }, name: "fig.png", in: dir)
        let size = try #require(Self.pngSize(out))
        #expect(size.width >= 400 && size.width <= 4000 && size.height >= 200 && size.height <= 4000, "\(size)")
        // Nothing but the figure is left in the folder (the temporary file was renamed).
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["fig.png"])
    }

    @Test func scaleSetsThePixelSize() throws {
        let dir = CLI.tempDir()
        let a = try Self.renders(["heatmap", Self.trace, "--layer", "1"], name: "a.png", in: dir)
        let b = try Self.renders(["heatmap", Self.trace, "--layer", "1", "--scale", "1"], name: "b.png", in: dir)
        let sa = try #require(Self.pngSize(a)), sb = try #require(Self.pngSize(b))
        #expect(sa.width == 2 * sb.width && sa.height == 2 * sb.height)
    }

    @Test func svgAndPDFByExtension() throws {
        let dir = CLI.tempDir()
        let svg = try Self.renders(["retention", Self.trace, "--policies", "h2o", "--layers", "0-4"], name: "r.svg", in: dir)
        let pdf = try Self.renders(["heatmap", Self.trace, "--layer", "2"], name: "h.pdf", in: dir)
        let s = String(decoding: try Data(contentsOf: svg), as: UTF8.self)
        #expect(s.contains("<svg"))
        // The root's width: at least the 620 pt page, wider for a long title block.
        let width = s.range(of: "width=\"").flatMap { r in Double(s[r.upperBound...].prefix { $0.isNumber || $0 == "." }) }
        #expect((width ?? 0) >= 620, "\(String(s.prefix(300)))")
        #expect(try Data(contentsOf: pdf).prefix(5) == Data("%PDF-".utf8))
    }

    @Test(
        "the same inputs give the same bytes",
        arguments: [
            (["heatmap", "TRACE", "--layer", "4", "--all-heads"], "png"),
            (["heatmap", "TRACE", "--layer", "4"], "svg"),
            (["retention", "TRACE", "--policies", "h2o,lookm", "--layers", "0-5"], "png"),
            (["patches", "TRACE", "--policies", "snapkv"], "svg"),
            (["modality", "TRACE", "--policies", "lookm", "--layers", "0-5"], "png"),
        ])
    func deterministic(args: [String], ext: String) throws {
        let dir = CLI.tempDir()
        let a = args.map { $0 == "TRACE" ? Self.trace : $0 }
        let one = try Self.renders(a, name: "one.\(ext)", in: dir)
        let two = try Self.renders(a, name: "two.\(ext)", in: dir)
        #expect(try Data(contentsOf: one) == Data(contentsOf: two))
    }

    /// A real sweep of the shipped trace (full, h2o, text-prior, lookm at two budgets), run once.
    static let sweep: URL = {
        let dir = CLI.tempDir().appendingPathComponent("sweep")
        let r = try? CLI.run([
            "sweep", trace, "--policies", "full,h2o,text-prior,lookm", "--budgets", "0.1,0.3",
            "--metrics", "attention_recall,kept_ratio,image_retention", "--out", dir.path,
        ])
        precondition(r?.status == 0, "sweep failed: \(r?.stderr ?? "no result")")
        return dir
    }()

    @Test func curvesFromASweepFolderItsJSONOrItsCSV() throws {
        let dir = CLI.tempDir()
        let folder = Self.sweep
        for (i, source) in [
            folder.path, folder.appendingPathComponent("results.json").path, folder.appendingPathComponent("results.csv").path,
        ].enumerated() {
            let out = try Self.renders(["curves", source, "--metric", "attention_recall"], name: "c\(i).png", in: dir)
            #expect(Self.pngSize(out) != nil)
        }
        // image_retention has a per-image row and a value for 'full' (1): drawn as the reference line.
        try Self.renders(
            ["curves", folder.path, "--metric", "image_retention", "--x", "nominal", "--policies", "lookm,h2o"], name: "i.svg", in: dir)
        // The same inputs give the same bytes.
        let a = try Self.renders(["curves", folder.path], name: "a.png", in: dir)
        let b = try Self.renders(["curves", folder.path], name: "b.png", in: dir)
        #expect(try Data(contentsOf: a) == Data(contentsOf: b))
    }

    @Test("-o, --output and --out all name the output file", arguments: ["-o", "--output", "--out"])
    func outputFlag(flag: String) throws {
        let dir = CLI.tempDir()
        let out = dir.appendingPathComponent("h.png")
        let r = try CLI.run(["render", "heatmap", Self.trace, "--layer", "2", flag, out.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("wrote \(out.path)"))
        #expect(Self.pngSize(out) != nil)
    }

    @Test func patchFateView() throws {
        let dir = CLI.tempDir()
        let out = try Self.renders(["patches", Self.trace, "--policies", "h2o,lookm", "--show", "fate"], name: "f.png", in: dir)
        let size = try #require(Self.pngSize(out))
        #expect(size.width > 400 && size.height > 300)
        let r = try CLI.run(["render", "patches", Self.trace, "--policies", "h2o", "--show", "where"])
        #expect(r.status == 2 && r.stderr.contains("--show"), "\(r.stderr)")
    }

    @Test(
        "bad input: one line on stderr and exit status 2",
        arguments: [
            (["render", "heatmap", "TRACE", "--layer", "99"], "--layer 99: not in the trace"),
            (["render", "heatmap", "TRACE", "--layer", "1", "--head", "9"], "--head 9: the trace has 9 query heads"),
            (["render", "heatmap", "TRACE", "--layer", "1", "--head", "1", "--mean"], "use only one of --head and --mean"),
            (["render", "heatmap", "TRACE", "--layer", "1", "--out", "x.gif"], "unknown format 'gif'"),
            (["render", "heatmap", "TRACE", "--layer", "1", "-o", "x.gif"], "--output x.gif: unknown format 'gif'"),
            (["render", "heatmap", "TRACE", "--layer", "1", "--rows", "0:10"], "the trace records rows 153..<177"),
            (["render", "heatmap", "TRACE", "--layer", "1", "--cols", "5:3"], "The value '5:3' is invalid for '--cols <a:b>'"),
            (["render", "heatmap", "/nonexistent/trace", "--layer", "1"], "no such file or folder"),
            (["render", "retention", "TRACE"], "give --policies"),
            (["render", "retention", "TRACE", "--policies", "h2o,nope"], "'nope': unknown policy id"),
            (["render", "retention", "TRACE", "--policies", "h2o", "--budget", "1.5"], "--budget must be in (0, 1]"),
            (["render", "patches", "TRACE", "--policies", "h2o", "--layers", "40"], "layer 40 is not in the trace"),
            (["render", "modality", "TRACE", "--scale", "0"], "--scale must be in (0, 16]"),
            (["render", "merges", "TRACE", "--policy", "h2o", "--layer", "1"], "does not merge"),
            (["render", "merge-flow", "TRACE", "--policies", "h2o"], "'h2o' does not merge; merge flow needs merging policies"),
            (["render", "merge-flow", "TRACE", "--policies", "lookm", "--weight", "heavy"], "'heavy' is invalid for '--weight"),
            (["render", "merge-flow", "TRACE", "--policies", "lookm", "--merge-scope", "every"], "'every' is invalid for '--merge-scope"),
            (["render", "retention", "TRACE", "--policies", "h2o", "--merge-scope", "image"], "--merge-scope: no listed policy merges"),
            (["render", "merges", "TRACE", "--layer", "1", "--head", "3"], "--head 3: the trace has 3 KV heads"),
            (["render", "curves", "/nonexistent/results.csv"], "cannot read the file /nonexistent/results.json"),
            (["render", "curves", "SWEEP", "--metric", "no_such_metric"], "no values for metric 'no_such_metric'"),
            (["render", "curves", "SWEEP", "--policies", "tova"], "--policies: 'tova' is not in"),
            (["render", "curves", "BADJSON"], "not valid JSON"),
            (["render", "curves", "OTHERJSON"], "not a sweep's results.json (missing 'rows'"),
            (["render", "nothing"], "Unexpected argument 'nothing'"),
        ])
    func badInput(args: [String], expected: String) throws {
        let dir = CLI.tempDir()
        let bad = dir.appendingPathComponent("bad.json"), other = dir.appendingPathComponent("other.json")
        try "{\"rows\": [".write(to: bad, atomically: true, encoding: .utf8)
        try "{\"metadata\": {}}".write(to: other, atomically: true, encoding: .utf8)
        let sweep = args.contains("SWEEP") ? Self.sweep.path : ""
        let subst = ["TRACE": Self.trace, "SWEEP": sweep, "BADJSON": bad.path, "OTHERJSON": other.path]
        let r = try CLI.run(
            args.map { subst[$0] ?? $0 }
                + (args.contains("--out") || args.contains("-o") ? [] : ["--out", dir.appendingPathComponent("x.png").path]).filter { _ in
                    args.count > 2
                })
        #expect(r.status == 2, "\(args): \(r.stderr)")
        #expect(r.stderr.contains(expected), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("x.png").path))
    }

    // MARK: heatmap and merges on bare arrays (TraceOptions: --layer in both meanings)

    /// The LOOK-M oracle fixture: bare HQT arrays, 3 heads, 160 tokens, two images.
    static let oracle = CLI.shared.appendingPathComponent("fixtures/lookm-oracle/s1_text_heavy.npz").path
    static let oracleFlags = [
        "--attn", "in_attention", "--keys", "in_keys", "--values", "in_values",
        "--queries", "in_queries", "--token-kind", "in_token_kind",
    ]

    @Test(
        "heatmap and merges on the oracle fixture with mapping flags",
        .enabled(if: CLI.sharedExists, "needs ../shared beside the project"),
        arguments: [
            ["heatmap", "--all-heads"],
            ["heatmap", "--head", "2", "--norm", "linear", "--cols", "30:130"],
            ["heatmap", "--layer", "5", "--mean"],
            ["merges", "--policy", "lookm", "--budget", "0.2", "--head", "1"],
            ["merges", "--policy", "h2o", "--merge", "pivotal", "--layer", "5", "--range", "20:140"],
        ])
    func oracleFigure(args: [String]) throws {
        let dir = CLI.tempDir()
        let out = try Self.renders([args[0], Self.oracle] + Self.oracleFlags + args.dropFirst(), name: "fig.png", in: dir)
        let size = try #require(Self.pngSize(out))
        #expect(size.width >= 400 && size.width <= 4000 && size.height >= 200 && size.height <= 4000, "\(size)")
    }

    /// Writes bare `.npy` files into a new folder: `a.npy` ([H,T,T] HQT), `k.npy`, `v.npy`
    /// ([KVH,T,D]), `lhqt2.npy` ([2,H,T,T]) and `lhqt1.npy` ([1,H,T,T]).
    static func bareArrays() throws -> URL {
        let dir = CLI.tempDir()
        let t = TestTrace(.init(layers: 2, heads: 4, kvHeads: 2, dim: 4, prefill: 12, future: 0, spans: []))
        let H = t.H, KVH = t.KVH, T = t.T, D = t.D
        let a = t.layers[0].attention!.floats()
        try NPYWriter.write(TensorData(name: "attn", floats: a, shape: [H, T, T], as: .f32), to: dir.appendingPathComponent("a.npy"))
        try NPYWriter.write(
            TensorData(name: "k", floats: t.layers[0].keys!.floats(), shape: [KVH, T, D], as: .f32),
            to: dir.appendingPathComponent("k.npy"))
        try NPYWriter.write(
            TensorData(name: "v", floats: t.layers[0].values!.floats(), shape: [KVH, T, D], as: .f32),
            to: dir.appendingPathComponent("v.npy"))
        try NPYWriter.write(
            TensorData(name: "attn", floats: a + t.layers[1].attention!.floats(), shape: [2, H, T, T], as: .f16),
            to: dir.appendingPathComponent("lhqt2.npy"))
        try NPYWriter.write(
            TensorData(name: "attn", floats: a, shape: [1, H, T, T], as: .f32), to: dir.appendingPathComponent("lhqt1.npy"))
        return dir
    }

    @Test(
        "heatmap and merges on bare .npy arrays: --layer is the layer held (HQT) or drawn (LHQT)",
        arguments: [
            (["heatmap", "a.npy"], "heatmap-a-L0-mean.png"),
            (["heatmap", "a.npy", "--layer", "5"], "heatmap-a-L5-mean.png"),
            (["heatmap", "a.npy", "--layer", "7", "--all-heads"], "heatmap-a-L7-all-heads.png"),
            (["heatmap", "a.npy", "--head", "3", "--image-spans", "2:6", "--grid", "2x2"], "heatmap-a-L0-H3.png"),
            (["heatmap", "lhqt2.npy", "--layer", "1", "--head", "0"], "heatmap-lhqt2-L1-H0.png"),
            (["heatmap", "lhqt1.npy"], "heatmap-lhqt1-L0-mean.png"),
            (
                ["merges", "a.npy", "--keys", "k.npy", "--values", "v.npy", "--policy", "lookm", "--budget", "0.5"],
                "merges-a-lookm-L0-G0.png"
            ),
            (
                [
                    "merges", "a.npy", "--keys", "k.npy", "--values", "v.npy", "--layer", "2", "--policy", "h2o", "--merge", "pivotal",
                    "--budget", "0.5", "--head", "1",
                ],
                "merges-a-h2o+pivotal-L2-G1.png"
            ),
        ])
    func bareNPY(args: [String], expectedName: String) throws {
        let dir = try Self.bareArrays()
        let r = try CLI.run(["render", args[0], dir.appendingPathComponent(args[1]).path] + args.dropFirst(2), cwd: dir)
        #expect(r.status == 0, "\(args): \(r.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("Output").path)
        #expect(files.count == 1, "\(files)")
        let name = try #require(files.first)
        // The default name carries the layer: N for HQT arrays with --layer N, else 0 / the chosen one.
        #expect(name == RenderSupportName.safe(expectedName), "\(name)")
        #expect(r.stdout.contains("/Output/\(name)"), "\(r.stdout)")
        let size = try #require(Self.pngSize(dir.appendingPathComponent("Output").appendingPathComponent(name)))
        #expect(size.width >= 400 && size.width <= 4000 && size.height >= 200 && size.height <= 4000, "\(size)")
    }

    @Test func layerPicksTheLayerOfAttnTraceFiles() throws {
        // A single-file attn-trace (.safetensors): --layer picks the layer; it is no mapping flag.
        let dir = CLI.tempDir()
        let t = TestTrace(.init(layers: 3, heads: 2, kvHeads: 1, dim: 4, prefill: 8, future: 0, spans: []))
        var info = t.info
        info.name = "one"
        info.recordedLayers = [0, 2]
        var layers: [Int: [TensorData]] = [:]
        for l in [0, 2] { layers[l] = t.tensorData(layer: l, roles: ["attn", "k", "v"]) }
        let file = dir.appendingPathComponent("one.safetensors")
        try AttnTraceWriter.writeSingleFile(info: info, layers: layers, to: file)
        try Self.renders(["heatmap", file.path, "--layer", "2"], name: "h.png", in: dir)
        try Self.renders(["merges", file.path, "--layer", "2", "--policy", "lookm", "--budget", "0.5"], name: "m.png", in: dir)
        let r = try CLI.run(["render", "heatmap", file.path, "--layer", "1", "--out", dir.appendingPathComponent("x.png").path])
        #expect(r.status == 2 && r.stderr.contains("--layer 1: not in the trace (recorded: 0,2)"), "\(r.stderr)")
        let all = try CLI.run(["render", "heatmap", file.path, "--out", dir.appendingPathComponent("x.png").path])
        #expect(all.status == 2 && all.stderr.contains("--layer: required, the trace records 2 layers (0,2)"), "\(all.stderr)")
        // A bare HQT .safetensors with only --layer: the arrays are that layer.
        let bare = dir.appendingPathComponent("bare.safetensors")
        try SafeTensorsWriter.write([TensorData(name: "attn", floats: t.layers[0].attention!.floats(), shape: [t.H, t.T, t.T])], to: bare)
        let b = try CLI.run(["render", "heatmap", bare.path, "--layer", "3"], cwd: dir)
        #expect(b.status == 0 && b.stdout.contains("/Output/heatmap-bare-L3-mean.png"), "\(b.stdout) \(b.stderr)")
    }

    @Test(
        "bad bare-array input to heatmap and merges: one line, exit status 2",
        arguments: [
            (["heatmap", "lhqt1.npy", "--layer", "5"], "--layer 5: not in the trace (recorded: 0)"),
            (["heatmap", "lhqt2.npy"], "--layer: required, the trace records 2 layers (0,1)"),
            (["heatmap", "lhqt2.npy", "--layer", "2", "--all-heads"], "--layer 2: not in the trace (recorded: 0,1)"),
            (["heatmap", "a.npy", "--layer=-1"], "--layer must be ≥ 0, got -1"),
            (["heatmap", "a.npy", "--head", "4"], "--head 4: the trace has 4 query heads"),
            (["heatmap", "a.npy", "--layout", "LHQT"], "does not fit layout LHQT"),
            (["heatmap", "a.npy", "--grid"], "every head as small multiples is --all-heads"),
            (["merges", "a.npy", "--keys", "k.npy", "--layer", "1", "--head", "2"], "--head 2: the trace has 2 KV heads"),
            (["merges", "lhqt1.npy", "--layer", "5"], "--layer 5: not in the trace (recorded: 0)"),
        ])
    func badBareInput(args: [String], expected: String) throws {
        let dir = try Self.bareArrays()
        let out = dir.appendingPathComponent("x.png")
        let r = try CLI.run(["render", args[0], dir.appendingPathComponent(args[1]).path] + args.dropFirst(2) + ["--out", out.path])
        #expect(r.status == 2, "\(args): \(r.stderr)")
        #expect(r.stderr.contains(expected), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    @Test func oldGridFlagPointsToAllHeads() throws {
        let dir = CLI.tempDir()
        let out = dir.appendingPathComponent("x.png").path
        for args in [
            ["render", "heatmap", Self.trace, "--layer", "3", "--grid"],
            ["render", "heatmap", Self.trace, "--layer", "3", "--grid", "--out", out],
            ["render", "heatmap", Self.trace, "--layer", "3", "--grid", "4x4", "--out", out],
        ] {
            let r = try CLI.run(args)
            #expect(r.status == 2 && r.stderr.contains("--all-heads"), "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        }
    }

    @Test func helpListsTheFigures() throws {
        let r = try CLI.run(["render", "--help"])
        #expect(r.status == 0)
        for s in ["heatmap", "retention", "patches", "curves", "modality", "merges"] { #expect(r.stdout.contains(s), "\(s)") }
        let h = try CLI.run(["render", "heatmap", "--help"])
        for s in [
            "--norm", "--cmap", "--all-heads", "--rows", "--out", "--scale", "viridis", "magma", "cividis", "--attn", "--token-kind",
            "--grid <RxC>",
        ] { #expect(h.stdout.contains(s), "\(s)") }
    }
}

/// File names as `RenderOutputOptions` makes them safe (`+` → `_`).
enum RenderSupportName {
    static func safe(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" })
    }
}
