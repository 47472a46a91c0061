/// Token modality codes, as transformers' `mm_token_type_ids`: 0 text, 1 image, 2 video, 3 audio.
public enum Modality: UInt8, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case text = 0, image, video, audio
    public var description: String {
        switch self {
        case .text: "text"
        case .image: "image"
        case .video: "video"
        case .audio: "audio"
        }
    }
}

/// A patch grid: `rows × cols`, patches in row-major order.
public struct GridSize: Sendable, Hashable, Codable, CustomStringConvertible {
    public var rows: Int
    public var cols: Int
    public init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
    }
    public var count: Int { rows * cols }
    /// `rows · cols`, or nil when the product overflows (a grid read from a file or flag).
    public var checkedCount: Int? {
        let (r, o) = rows.multipliedReportingOverflow(by: cols)
        return o ? nil : r
    }
    public var description: String { "\(rows)×\(cols)" }

    /// The default grid for a span of `n` tokens: square when `n` is a perfect square, else `1×n`.
    public static func guess(_ n: Int) -> GridSize {
        let r = Int(Double(n).squareRoot().rounded())
        return r * r == n ? GridSize(rows: r, cols: r) : GridSize(rows: 1, cols: n)
    }
}

/// One image (or tile) in the token sequence: a half-open span of positions and its patch grid.
public struct ImageSpan: Sendable, Hashable, Codable {
    public var id: Int
    public var positions: Range<Int>
    public var grid: GridSize
    public var tiles: [ImageSpan]
    /// True when the span holds stand-in tokens, not vision-encoder output.
    public var isPseudo: Bool
    public var source: String?
    /// Optional grey levels of a pseudo-image (row-major, `grid` sized) for drawing.
    public var levels: [[Double]]?
    /// A tile's name, e.g. "base", "high-res", "row 1 col 2", "global", "frame 0" (nil: none given).
    public var label: String?

    public init(
        id: Int, positions: Range<Int>, grid: GridSize? = nil, tiles: [ImageSpan] = [],
        isPseudo: Bool = false, source: String? = nil, levels: [[Double]]? = nil, label: String? = nil
    ) {
        self.id = id
        self.positions = positions
        self.grid = grid ?? GridSize.guess(positions.count)
        self.tiles = tiles
        self.isPseudo = isPseudo
        self.source = source
        self.levels = levels
        self.label = label
    }

    /// The positions holding the image's tokens: its tiles' spans when it has tiles (an image
    /// may hold text tokens between its tiles, such as Idefics3's tile tags), else its own span.
    public var tokenRanges: [Range<Int>] { tiles.isEmpty ? [positions] : tiles.map(\.positions) }
}

/// The shape of a trace: `L`, `H`, `KVH`, `D`, `T`, `P`, the recorded query rows and the GQA map.
public struct TraceShape: Sendable, Hashable, Codable {
    /// Number of decoder layers of the model (`L`).
    public var layers: Int
    /// Query heads (`H`).
    public var queryHeads: Int
    /// KV heads (`KVH`).
    public var kvHeads: Int
    /// Head dimension (`D`).
    public var headDim: Int
    /// Sequence length (`T`).
    public var seqLen: Int
    /// Prefill length (`P`): positions `≥ P` were generated.
    public var prefillLen: Int
    /// Absolute positions of the rows held in `attn` and `q`.
    public var queryRows: Range<Int>
    /// `kvHeadOfQueryHead[h]`: the KV head query head `h` reads.
    public var kvHeadOfQueryHead: [Int]

    public init(
        layers: Int, queryHeads: Int, kvHeads: Int, headDim: Int, seqLen: Int, prefillLen: Int,
        queryRows: Range<Int>, kvHeadOfQueryHead: [Int]
    ) {
        self.layers = layers
        self.queryHeads = queryHeads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.seqLen = seqLen
        self.prefillLen = prefillLen
        self.queryRows = queryRows
        self.kvHeadOfQueryHead = kvHeadOfQueryHead
    }

    /// The query heads that read KV head `g`.
    public func queryHeads(ofKVHead g: Int) -> [Int] {
        kvHeadOfQueryHead.indices.filter { kvHeadOfQueryHead[$0] == g }
    }

    /// The default GQA map `h / (H / KVH)`.
    public static func defaultGQAMap(queryHeads: Int, kvHeads: Int) -> [Int] {
        let group = max(1, queryHeads / max(kvHeads, 1))
        return (0 ..< queryHeads).map { min($0 / group, kvHeads - 1) }
    }
}

/// Everything KVScope uses from a trace's metadata (`trace.json`, a sidecar, or mapping flags).
public struct TraceInfo: Sendable, Codable {
    public var name: String
    public var modelName: String
    public var shape: TraceShape
    public var modality: [Modality]
    public var images: [ImageSpan]
    /// Layer indices present in the trace, ascending.
    public var recordedLayers: [Int]
    /// Softmax scale of `q·kᵀ` (default `1/√D`).
    public var attnScale: Double
    public var causal: Bool
    /// True when any image span is a pseudo-image: show it next to any result about images.
    public var syntheticImageTokens: Bool
    /// A hash of the metadata and tensor headers, for result rows.
    public var contentHash: String
    /// Free-form provenance kept for display (`recorder`, `notes`, `generated_text`, …).
    public var extras: [String: String]
    /// The position ids the model used, when they are not `0 ..< T`: one row of `T` ids, or three
    /// rows (temporal, height, width) for M-RoPE (Qwen2-VL). Nil means `0 ..< T`.
    public var positionIDs: [[Int]]?
    /// Sliding-window layers: layer → window `W` (row `i` reads keys `i − W + 1 … i`, and the
    /// layer's cache holds `min(T, W)` keys). Layers absent here read every earlier key.
    public var slidingWindows: [Int: Int] = [:]
    /// Spans whose tokens also read the later tokens of the same span (Gemma 3 images): attention
    /// above the diagonal is expected there.
    public var bidirectionalSpans: [Range<Int>] = []

    public init(
        name: String, modelName: String, shape: TraceShape, modality: [Modality], images: [ImageSpan],
        recordedLayers: [Int], attnScale: Double? = nil, causal: Bool = true,
        syntheticImageTokens: Bool? = nil, contentHash: String = "", extras: [String: String] = [:]
    ) {
        self.name = name
        self.modelName = modelName
        self.shape = shape
        self.modality = modality
        self.images = images
        self.recordedLayers = recordedLayers
        self.attnScale = attnScale ?? 1 / Double(max(shape.headDim, 1)).squareRoot()
        self.causal = causal
        self.syntheticImageTokens = syntheticImageTokens ?? images.contains { $0.isPseudo }
        self.contentHash = contentHash
        self.extras = extras
    }

    /// Runs of equal modality: `(modality, range)` in order.
    public var modalityRuns: [(modality: Modality, positions: Range<Int>)] {
        var runs: [(Modality, Range<Int>)] = []
        var start = 0
        for i in 1 ... modality.count where i == modality.count || modality[i] != modality[start] {
            if !modality.isEmpty { runs.append((modality[start], start ..< i)) }
            start = i
        }
        return runs.map { (modality: $0.0, positions: $0.1) }
    }

    /// The image id of each position, or nil for non-image positions.
    public var imageIdOfPosition: [Int?] {
        var out = [Int?](repeating: nil, count: shape.seqLen)
        for span in images { for r in span.tokenRanges { for p in r where p < out.count { out[p] = span.id } } }
        return out
    }
}

/// The tensors of one layer, as read-only views; any may be absent.
/// `s[h, j] = Σ_{i<P} A[h, i, j]` for `j < P`, per head `[H][P]` in `Double`, each sum over the
/// rows `0 ..< P` in ascending order (the same additions as `LayerContext.colsum` makes from
/// `attention`, so the same bits), for the prefill length `P` the reader resolved.
public struct AttentionColumnSums: Sendable {
    public let prefill: Int
    public let values: [Double]
    public init(prefill: Int, values: [Double]) {
        self.prefill = prefill
        self.values = values
    }
}

public struct LayerTensors: Sendable {
    public var layer: Int
    /// Post-softmax attention `[H, Q, T]`.
    public var attention: Tensor?
    /// Prefill column sums `[H, T]` (over rows `0 ..< P`).
    public var colsum: Tensor?
    /// Post-RoPE queries of the recorded rows `[H, Q, D]`.
    public var queries: Tensor?
    /// Cached keys `[KVH, T, D]` (post-RoPE).
    public var keys: Tensor?
    /// Cached values `[KVH, T, D]`.
    public var values: Tensor?
    /// L2 norms of keys `[KVH, T]`.
    public var keyNorms: Tensor?
    /// L2 norms of values `[KVH, T]`.
    public var valueNorms: Tensor?
    /// The file the layer came from, for messages.
    public var file: String
    /// Column sums of `attention` gathered by the reader while it checked the member's CRC-32
    /// (stored float32 `.npz` members), or nil.
    public var attentionColumnSums: AttentionColumnSums?

    public init(
        layer: Int, file: String, attention: Tensor? = nil, colsum: Tensor? = nil, queries: Tensor? = nil,
        keys: Tensor? = nil, values: Tensor? = nil, keyNorms: Tensor? = nil, valueNorms: Tensor? = nil
    ) {
        self.layer = layer
        self.file = file
        self.attention = attention
        self.colsum = colsum
        self.queries = queries
        self.keys = keys
        self.values = values
        self.keyNorms = keyNorms
        self.valueNorms = valueNorms
    }

    /// The tensors present, by their attn-trace names, in a fixed order.
    public var named: [(name: String, tensor: Tensor)] {
        let all: [(String, Tensor?)] = [
            ("attn", attention), ("attn_colsum", colsum), ("q", queries), ("k", keys),
            ("v", values), ("k_norm", keyNorms), ("v_norm", valueNorms),
        ]
        return all.compactMap { n, t in t.map { (name: n, tensor: $0) } }
    }
}

/// A trace that can be read one layer at a time.
public protocol TraceSource: Sendable {
    var info: TraceInfo { get }
    /// Maps and validates one layer. `index` is a model layer index from `info.recordedLayers`.
    func layer(_ index: Int) throws -> LayerTensors
    /// Files that make up the trace, with their sizes in bytes.
    var files: [(path: String, bytes: Int)] { get }
    /// Non-fatal findings of opening the trace (gaps, trailing bytes, …).
    var warnings: [TraceWarning] { get }
}

extension TraceSource {
    public var warnings: [TraceWarning] { [] }
    public var totalBytes: Int { files.reduce(0) { $0 + $1.bytes } }
}
