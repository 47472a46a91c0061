import ArgumentParser
import Foundation
import KVTrace

/// The bare-array mapping flags (docs/trace-format.md#mapping-flags), shared by every command that
/// reads traces: they apply to every bare `.npy`/`.npz`/`.safetensors` input, and attn-trace inputs
/// ignore them. A role without its flag takes the sidecar's name, else a member with the role's
/// conventional name (`BareTrace.conventionalNames`); a flag always wins.
struct MappingOptions: ParsableArguments {
    @Option(
        name: .customLong("attn"),
        help: .member(
            "the attention rows, [H,Q,T] or [L,H,Q,T] (a member name, or a .npy path beside the file; default: a member named attn or attention)."
        ))
    var attn: String?
    @Option(
        name: .customLong("colsum"),
        help: .member("prefill column sums over rows 0..<P, [H,T] or [L,H,T] (default: a member attn_colsum or colsum)."))
    var colsum: String?
    @Option(
        name: .customLong("keys"),
        help: .member("post-RoPE keys, [KVH,T,D] or [L,KVH,T,D] (default: a member k or keys)."))
    var keys: String?
    @Option(
        name: .customLong("values"),
        help: .member("values, [KVH,T,D] or [L,KVH,T,D] (default: a member v or values)."))
    var values: String?
    @Option(
        name: .customLong("queries"),
        help: .member("post-RoPE queries of the recorded rows, [H,Q,D] or [L,H,Q,D] (default: a member q or queries)."))
    var queries: String?
    @Option(
        name: .customLong("modality"),
        help: .member(
            "token modality [T], ints 0 text, 1 image, 2 video, 3 audio, or bool (true = image) (default: a member token_modality or modality)."
        ))
    var modality: String?
    @Option(
        name: .customLong("token-kind"),
        help: .member(
            "[T] ints, 0 text and k ≥ 1 a token of the k-th image (image id k − 1; the LOOK-M fixtures' in_token_kind; default: a member token_kind)."
        ))
    var tokenKind: String?
    @Option(name: .customLong("prefill-len"), help: .bareArrays("the prefill length P (default: T)."))
    var prefillLen: Int?
    @Option(name: .customLong("query-start"), help: .bareArrays("absolute position of the first recorded row (default: T − Q)."))
    var queryStart: Int?
    @Option(
        name: .customLong("layout"), help: .bareArrays("HQT (one layer) or LHQT (leading layer axis). Default: inferred from the ranks."))
    var layout: BareArrayMapping.Layout?
    @Option(
        name: .customLong("layer"),
        help:
            "Bare arrays with layout HQT: the layer index the arrays hold (default 0). In render heatmap / merges also the layer drawn, for any trace; in compare the layer a [heads, C] kept array holds."
    )
    var layer: Int?
    @Flag(name: .customLong("tril"), help: .bareArrays("--attn is a packed lower triangle [H, T(T+1)/2]."))
    var tril = false
    @Option(
        name: .customLong("image-spans"), help: .bareArrays("half-open image spans, e.g. 40:64,94:118.", valueName: "a:b,…"))
    var imageSpans: ListArgument<SpanArgument>?
    @Option(
        name: .customLong("placeholders"),
        help: .bareArrays("LOOK-M placeholder positions p0,p1,…; image i spans [p_i+(N−1)i, +N).", valueName: "p0,p1,…"))
    var placeholders: ListArgument<IndexArgument>?
    @Option(name: .customLong("tokens-per-image"), help: "With --placeholders: tokens per image N (default 576).")
    var tokensPerImage: Int?
    @Option(
        name: .customLong("grid"),
        help: .bareArrays("the patch grid of every image span (default: square when possible, else 1×n).", valueName: "RxC"))
    var grid: GridSize?
    @Option(
        name: .customLong("dtype"),
        help: .bareArrays("read 2-byte void / <i2 arrays as this dtype (only bf16).", valueName: "bf16"))
    var dtype: DTypeOverride?
    @Option(
        name: .customLong("kv-map"),
        help: .bareArrays("kv_head_of_query_head, e.g. 0,0,0,1,1,1 (default h / (H/KVH)).", valueName: "list"))
    var kvMap: ListArgument<IndexArgument>?

    func validate() throws {
        _ = try mapping()
    }

    /// The mapping the flags describe; malformed flag values are one-line errors naming the flag.
    func mapping() throws -> BareArrayMapping {
        var m = BareArrayMapping()
        m.attn = attn
        m.colsum = colsum
        m.keys = keys
        m.values = values
        m.queries = queries
        m.modality = modality
        m.tokenKind = tokenKind
        if let p = prefillLen {
            guard p >= 1 else { throw ValidationError("--prefill-len must be ≥ 1, got \(p)") }
            m.prefillLen = p
        }
        if let q = queryStart {
            guard q >= 0 else { throw ValidationError("--query-start must be ≥ 0, got \(q)") }
            m.queryStart = q
        }
        m.layout = layout
        if let l = layer {
            guard l >= 0 else { throw ValidationError("--layer must be ≥ 0, got \(l)") }
            m.layer = l
        }
        m.tril = tril
        let imageFlags = [tokenKind != nil, modality != nil, imageSpans != nil, placeholders != nil].filter { $0 }.count
        guard imageFlags <= 1 else { throw ValidationError("use only one of --token-kind, --modality, --image-spans, --placeholders") }
        m.imageSpans = imageSpans?.values.map(\.range)
        m.placeholders = placeholders?.values.map(\.value)
        if let n = tokensPerImage {
            guard n >= 1 else { throw ValidationError("--tokens-per-image must be ≥ 1, got \(n)") }
            guard placeholders != nil else { throw ValidationError("--tokens-per-image needs --placeholders") }
            m.tokensPerImage = n
        }
        m.grid = grid
        m.bf16 = dtype == .bf16
        m.kvMap = kvMap?.values.map(\.value)
        return m
    }

}

/// The trace path plus the bare-array mapping flags.
struct TraceOptions: ParsableArguments {
    @Argument(
        help: ArgumentHelp(
            "The trace: an attn-trace v1 folder, a single-file attn-trace .safetensors, or a bare .npy/.npz/.safetensors file.",
            valueName: "trace"))
    var path: String
    @OptionGroup var flags: MappingOptions

    var layer: Int? { flags.layer }
    var grid: GridSize? { flags.grid }

    /// The mapping the flags describe.
    func mapping() throws -> BareArrayMapping { try flags.mapping() }

    /// Opens the trace (validated; layers are read later, one at a time).
    func open() throws -> any TraceSource {
        try TraceLoader.open(path, mapping: mapping())
    }

    /// Opens the trace for a figure of one layer (`render heatmap`, `render merges`) and picks the
    /// layer to draw. `--layer N` serves both meanings: bare HQT arrays ARE layer N (so the figure
    /// draws layer N); for attn-trace folders and files and LHQT arrays it picks the recorded layer
    /// to draw. Without `--layer` a trace that records one layer draws it; one that records several
    /// needs `--layer`.
    func openOneLayer() throws -> (source: any TraceSource, layer: Int) {
        let source = try openPickingLayer()
        let info = source.info
        let recorded = info.recordedLayers
        guard let l = layer ?? (recorded.count == 1 ? recorded[0] : nil) else {
            throw CLIError("--layer: required, the trace records \(recorded.count) layers (\(RenderSupport.compactList(recorded)))")
        }
        try RenderSupport.checkLayer(l, info: info)
        return (source, l)
    }

    /// Opens the trace for a command where `--layer` picks a layer of any trace (see
    /// `openOneLayer`): bare HQT arrays take it as their mapping, attn-trace inputs ignore it.
    func openPickingLayer() throws -> any TraceSource {
        let full = try mapping()
        var withoutLayer = full
        withoutLayer.layer = nil
        var isDir: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        let maybeAttnTrace = exists && (isDir.boolValue || URL(fileURLWithPath: path).pathExtension.lowercased() == "safetensors")
        let source: any TraceSource
        if layer != nil, !withoutLayer.isSet, maybeAttnTrace {
            // Only --layer, on a folder or .safetensors: an attn-trace picks the layer to draw with
            // it; a bare .safetensors (HQT: the layer the arrays hold) takes it as a mapping flag.
            let plain = try TraceLoader.open(path, mapping: withoutLayer)
            source = plain is BareTrace ? try TraceLoader.open(path, mapping: full) : plain
        } else {
            // Bare arrays: --layer is the mapping's (LHQT arrays ignore it; it then picks the layer).
            source = try TraceLoader.open(path, mapping: full)
        }
        return source
    }
}

extension BareArrayMapping.Layout: ExpressibleByArgument {}

extension ArgumentHelp {
    /// The help of a bare-array mapping flag: "Bare arrays: " and `text` (attn-trace inputs ignore
    /// these flags).
    static func bareArrays(_ text: String, valueName: String? = nil) -> ArgumentHelp {
        ArgumentHelp("Bare arrays: " + text, valueName: valueName)
    }

    /// The help of a flag naming the member (or `.npy` file) that plays a role; its value is `name`.
    static func member(_ text: String) -> ArgumentHelp { bareArrays(text, valueName: "name") }
}
