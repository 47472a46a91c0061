import Foundation
import KVTrace

// The other ways to build a `TestTrace`: from explicit arrays (exact, f64), the 4-token hand
// trace of the metric tests, a trace with known contents (uniform causal attention, keys given by
// a formula), and the trace written as an attn-trace v1 folder.
extension TestTrace {
    /// A trace of the given metadata and layers.
    public init(info: TraceInfo, layers: [LayerTensors]) {
        self.info = info
        self.layers = layers
    }

    /// One layer's arrays: attn `[H,Q,T]`, q `[H,Q,D]`, k and v `[G,T,D]`; any may be nil.
    public typealias LayerArrays = (attn: [Double]?, q: [Double]?, k: [Double]?, v: [Double]?)

    /// One layer per element of `layerData`, stored as f64 (so values are exact), with the
    /// default GQA map and the content hash `memoryhash`.
    public init(
        H: Int, G: Int, D: Int, T: Int, P: Int, queryRows: Range<Int>, modality: [Modality], images: [ImageSpan],
        scale: Double? = nil, layerData: [LayerArrays]
    ) {
        let Q = queryRows.count
        layers = layerData.enumerated().map { l, d in
            LayerTensors(
                layer: l, file: "memory",
                attention: d.attn.map { Self.tensor($0, [H, Q, T], "attn") },
                queries: d.q.map { Self.tensor($0, [H, Q, D], "q") },
                keys: d.k.map { Self.tensor($0, [G, T, D], "k") },
                values: d.v.map { Self.tensor($0, [G, T, D], "v") })
        }
        let shape = TraceShape(
            layers: layerData.count, queryHeads: H, kvHeads: G, headDim: D, seqLen: T, prefillLen: P,
            queryRows: queryRows, kvHeadOfQueryHead: TraceShape.defaultGQAMap(queryHeads: H, kvHeads: G))
        info = TraceInfo(
            name: "memory", modelName: "memory", shape: shape, modality: modality, images: images,
            recordedLayers: Array(0 ..< layerData.count), attnScale: scale, contentHash: "memoryhash")
    }

    /// An f64 tensor of `v`.
    public static func tensor(_ v: [Double], _ shape: [Int], _ name: String) -> Tensor {
        let data = v.withUnsafeBufferPointer { Data(buffer: $0) }
        return Tensor(dtype: .f64, shape: shape, storage: .copying(data, name: name), offset: 0)
    }

    /// The hand trace: T = 4, P = 3, one head, D = 2, scale 1. Row 3 attends A = [0.4, 0.1, 0.2, 0.3]
    /// (keys k_j = (ln a_j, 0), query (1, 0)); position 1 is an image token.
    public static func hand(withQueries: Bool = true, P: Int = 3, rows: Range<Int> = 3 ..< 4) -> TestTrace {
        let a = [0.4, 0.1, 0.2, 0.3]
        let k = a.flatMap { [Foundation.log($0), 0.0] }
        let v: [Double] = [1, 0, 0, 1, 1, 1, 0, 2]
        // Attention rows of the recorded positions: row i is the causal softmax of ln a_j, j ≤ i.
        var attn: [Double] = []
        var q: [Double] = []
        for i in rows {
            let s = a[0 ... i].reduce(0, +)
            attn += (0 ..< 4).map { $0 <= i ? a[$0] / s : 0 }
            q += [1, 0]
        }
        return TestTrace(
            H: 1, G: 1, D: 2, T: 4, P: P, queryRows: rows, modality: [.text, .image, .text, .text],
            images: [ImageSpan(id: 0, positions: 1 ..< 2)], scale: 1,
            layerData: [(attn: attn, q: withQueries ? q : nil, k: k, v: v)])
    }

    /// Key element `(layer, KV head, position, dim)` of `known(…)`; values are its negation.
    public static func knownKey(_ l: Int, _ g: Int, _ t: Int, _ d: Int) -> Float {
        Float(l) + Float(g) * 0.5 + Float(t) * 0.01 - Float(d) * 0.125
    }

    /// A causal trace with known contents, stored as f32: attention rows uniform over the visible
    /// prefix (row i holds 1/(i+1)) on every row, their prefill column sums, queries
    /// `(flat index mod 5) / 2` on every row, keys `knownKey`, values `−knownKey`; default GQA map.
    public static func known(
        layers L: Int = 2, heads H: Int = 4, kvHeads G: Int = 2, dim D: Int = 8, seqLen T: Int = 12,
        prefill P: Int = 10,
        images: [ImageSpan] = [ImageSpan(id: 0, positions: 3 ..< 7, grid: GridSize(rows: 2, cols: 2))]
    ) -> TestTrace {
        var attn = [Float](repeating: 0, count: H * T * T)
        for h in 0 ..< H { for i in 0 ..< T { for j in 0 ... i { attn[(h * T + i) * T + j] = 1 / Float(i + 1) } } }
        var colsum = [Float](repeating: 0, count: H * T)
        for h in 0 ..< H { for j in 0 ..< P { for i in j ..< P { colsum[h * T + j] += 1 / Float(i + 1) } } }
        let q = (0 ..< H * T * D).map { Float($0 % 5) * 0.5 }
        var modality = [Modality](repeating: .text, count: T)
        for img in images { for p in img.positions { modality[p] = .image } }
        let built = (0 ..< L).map { l in
            var k = [Float](), v = [Float]()
            for g in 0 ..< G { for t in 0 ..< T { for d in 0 ..< D { k.append(knownKey(l, g, t, d)); v.append(-knownKey(l, g, t, d)) } } }
            return LayerTensors(
                layer: l, file: "known", attention: tensor(attn, [H, T, T], "attn"), colsum: tensor(colsum, [H, T], "attn_colsum"),
                queries: tensor(q, [H, T, D], "q"), keys: tensor(k, [G, T, D], "k"), values: tensor(v, [G, T, D], "v"))
        }
        let shape = TraceShape(
            layers: L, queryHeads: H, kvHeads: G, headDim: D, seqLen: T, prefillLen: P,
            queryRows: 0 ..< T, kvHeadOfQueryHead: TraceShape.defaultGQAMap(queryHeads: H, kvHeads: G))
        return TestTrace(
            info: TraceInfo(
                name: "tiny", modelName: "tiny-model", shape: shape, modality: modality, images: images,
                recordedLayers: Array(0 ..< L)),
            layers: built)
    }

    /// The small trace of the CLI tests: 2 layers, 4 heads over 2 KV heads, D = 4, 10 tokens
    /// (P = 8), one 2×2 image at 2 ..< 6; `known` contents.
    public static func small() -> TestTrace {
        let t = known(layers: 2, heads: 4, kvHeads: 2, dim: 4, seqLen: 10, prefill: 8, images: [ImageSpan(id: 0, positions: 2 ..< 6)])
        var info = t.info
        info.name = "small"
        info.modelName = "m"
        return TestTrace(info: info, layers: t.layers)
    }

    /// `H`, `KVH`, `D`, `T`, `P` of the trace.
    public var H: Int { info.shape.queryHeads }
    public var KVH: Int { info.shape.kvHeads }
    public var D: Int { info.shape.headDim }
    public var T: Int { info.shape.seqLen }
    public var P: Int { info.shape.prefillLen }

    /// The tensors of layer `l` as writer input, in the order attn, attn_colsum, q, k, v (those the
    /// layer has and `roles` names); attn_colsum is always f32, the others `dtype`.
    public func tensorData(layer l: Int, dtype: DType = .f16, roles: Set<String>? = nil) -> [TensorData] {
        let t = layers[l]
        let all: [(String, Tensor?, DType)] = [
            ("attn", t.attention, dtype), ("attn_colsum", t.colsum, .f32), ("q", t.queries, dtype),
            ("k", t.keys, dtype), ("v", t.values, dtype),
        ]
        return all.compactMap { name, tensor, type in
            guard let tensor, roles?.contains(name) ?? true else { return nil }
            return TensorData(name: name, floats: tensor.floats(), shape: tensor.shape, as: type)
        }
    }

    /// Writes the trace (the tensors `roles` names, f16) into a new temporary folder `small` and
    /// returns it.
    public func writeTemporaryFolder(roles: Set<String>? = nil) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-test-\(UUID().uuidString)")
        return try writeFolder(dir.appendingPathComponent("small"), roles: roles, extra: [:])
    }

    /// Writes the trace as an attn-trace v1 folder at `dir` (only the tensors `roles` names, when given).
    @discardableResult
    public func writeFolder(
        _ dir: URL, dtype: DType = .f16, roles: Set<String>? = nil, extra: [String: String] = ["notes": "tiny test trace"]
    ) throws -> URL {
        var info = self.info
        info.recordedLayers = []
        var w = try AttnTraceWriter(folder: dir, info: info)
        for l in layers.indices { try w.write(layer: l, tensors: tensorData(layer: l, dtype: dtype, roles: roles)) }
        try w.finish(extra: extra)
        return dir
    }
}
