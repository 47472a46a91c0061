import ArgumentParser
import Foundation
import KVTrace

/// `kvscope synth`: writes a synthetic multimodal trace in attn-trace v1.
struct SynthCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample(
            "synth Output/llava-small --preset llava-1.5 --layers 2 --heads 4 --kv-heads 2 --head-dim 32 --grid 8x8 --text-len 120 --force",
            note: "a small LLaVA-geometry trace in seconds; drop the overrides for the full geometry"),
        HelpExample("synth Output/tiny --preset tiny --force"),
    ]

    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a synthetic multimodal attention trace (attn-trace v1).",
        discussion: """
            The attention is exactly the causal softmax of the stored q·kᵀ/√D (computed from the \
            rounded q and k), so every metric agrees with the tensors. Designed components of q and k \
            give it the structure real models show and the LOOK-M paper reports:
              • attention sinks on the first tokens (position 0 strongest);
              • recency (rotary-style channels, largest for near positions);
              • text tokens drawing more attention than image tokens in prefill;
              • spatially local attention inside an image (2-D rotary channels over patch row/column);
              • a few salient patches per image;
              • layers that differ: early layers broad, later ones sparse; heads with seeded mixes.
            It does not model token content or semantics, RoPE's exact frequencies, structured values \
            (values are Gaussian), or dependence between layers. Same settings and seed → same bytes.

            Presets: llava-1.5 (32 layers, 32 heads, head dim 128, three 24×24 images of 576 tokens, \
            600 text tokens, 16 generated, 32 window rows + column sums; about 46 MB per layer) and \
            tiny (4 layers, 4 heads over 2 KV heads, two 4×4 images, full rows). Flags override the preset.
            """ + "\n\n" + HelpExample.section(examples)
    )

    enum Preset: String, ExpressibleByArgument, CaseIterable {
        case llava15 = "llava-1.5", tiny
    }

    enum StoreType: String, ExpressibleByArgument, CaseIterable {
        case f16, bf16, f32
        var dtype: DType { self == .f16 ? .f16 : self == .bf16 ? .bf16 : .f32 }
    }

    @Argument(help: ArgumentHelp("Output folder (must not exist, or be empty; see --force).", valueName: "out"))
    var out: String

    @Option(help: "Starting settings.")
    var preset: Preset = .tiny
    @Option(help: "Decoder layers.") var layers: Int?
    @Option(help: "Query heads.") var heads: Int?
    @Option(name: .customLong("kv-heads"), help: "KV heads (GQA when fewer than --heads; must divide it).") var kvHeads: Int?
    @Option(name: .customLong("head-dim"), help: "Head dimension D (≥ 16).") var headDim: Int?
    @Option(help: "Number of images.") var images: Int?
    @Option(help: ArgumentHelp("Patch grid of each image, RxC (tokens per image = R·C).", valueName: "RxC")) var grid: GridSize?
    @Option(help: "Text tokens before the first image.") var prefix: Int?
    @Option(help: "Text tokens between consecutive images.") var gap: Int?
    @Option(name: .customLong("text-len"), help: "Text tokens in all (prefix, gaps and the question after the images).") var textLen: Int?
    @Option(help: "Generated tokens after the prompt (their rows are the true evaluation rows).") var generate: Int?
    @Option(
        name: .customLong("last-prefill-rows"),
        help: ArgumentHelp(
            "Store only the last N prefill rows of attn and q plus every generated row (a window trace; column sums still cover all prefill rows).",
            valueName: "N")) var lastPrefillRows: Int?
    /// The old name of --last-prefill-rows, kept hidden so that older scripts run.
    @Option(name: .customLong("window"), help: .hidden) var deprecatedWindow: Int?
    @Flag(name: .customLong("full-rows"), help: "Store every attention row (overrides the preset's window).") var fullRows = false
    @Flag(name: .customLong("no-qkv"), help: "Do not store q, k, v and their norms.") var noQKV = false
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Storage dtype of attn, q, k, v.") var dtype: StoreType = .f16
    @Option(help: "Trace name written into trace.json.") var name: String?
    @Flag(help: "Replace the output folder if it exists.") var force = false

    func config() throws -> SyntheticConfig {
        var c = preset == .llava15 ? SyntheticConfig.llava15 : SyntheticConfig.tiny
        if let v = layers { c.layers = v }
        if let v = heads {
            c.heads = v
            if kvHeads == nil { c.kvHeads = preset == .llava15 ? v : max(1, v / 2) }
        }
        if let v = kvHeads { c.kvHeads = v }
        if let v = headDim { c.headDim = v }
        if let v = images { c.images = v }
        if let g = grid { c.imageGrid = g }
        if let v = prefix { c.prefix = v }
        if let v = gap { c.gap = v }
        if let v = textLen { c.textLength = v }
        if let v = generate { c.generated = v }
        if let v = lastPrefillRows ?? deprecatedWindow { c.windowRows = v }
        if fullRows { c.windowRows = nil }
        if noQKV { c.storeQKV = false }
        c.seed = seed
        c.dtype = dtype.dtype
        c.name = name ?? URL(fileURLWithPath: out).lastPathComponent
        if let p = c.problem() { throw ValidationError(p) }
        return c
    }

    func validate() throws {
        if lastPrefillRows != nil && deprecatedWindow != nil {
            throw ValidationError("--window is the old name of --last-prefill-rows: give one")
        }
        if (lastPrefillRows ?? deprecatedWindow) != nil && fullRows {
            throw ValidationError("use either --last-prefill-rows or --full-rows")
        }
        _ = try config()
    }

    func run() throws {
        let c = try config()
        let dest = URL(fileURLWithPath: out)
        let fm = FileManager.default
        if fm.fileExists(atPath: dest.path) {
            let empty = (try? fm.contentsOfDirectory(atPath: dest.path))?.isEmpty ?? false
            guard force || empty else { throw CLIError("\(out): already exists; pass --force to replace it") }
        }
        let tmp = dest.deletingLastPathComponent().appendingPathComponent(".\(dest.lastPathComponent).tmp-\(getpid())")
        try? fm.removeItem(at: tmp)
        // A folder that cannot be written is named as the user gave it, not by the temporary name.
        try AtomicFile.makeFolder(dest.deletingLastPathComponent())
        guard mkdir(tmp.path, 0o755) == 0 else { throw CLIError("\(out): cannot write here: \(String(cString: strerror(errno)))") }
        let progress = Progress(total: c.layers, label: "synth")
        do {
            try SyntheticTraceGenerator.write(c, to: tmp) { _ in progress.step() }
            progress.finish()
            if fm.fileExists(atPath: dest.path) { try fm.removeItem(at: dest) }
            try fm.moveItem(at: tmp, to: dest)
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
        let bytes =
            (try? fm.contentsOfDirectory(atPath: dest.path))?.reduce(0) { s, f in
                s + ((try? fm.attributesOfItem(atPath: dest.appendingPathComponent(f).path)[.size] as? Int) ?? 0)
            } ?? 0
        print(
            "wrote \(out): \(c.layers) layers, \(c.heads) heads (\(c.kvHeads) KV), T = \(c.seqLength), P = \(c.prefillLength), \(c.images) images of \(c.imageGrid) — \(String(format: "%.1f", Double(bytes) / 1_048_576)) MiB"
        )
    }
}
