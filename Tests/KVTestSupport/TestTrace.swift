import Foundation
import KVTrace

/// The one test-trace builder: a small in-memory trace. `init(_:)` draws random q, k, v with
/// causal softmax attention over every row (prefill and future), two image spans, optional GQA,
/// deterministic from `seed`; `TestTraceBuilders.swift` builds one from explicit arrays, the hand
/// trace, or known contents, and writes any of them as an attn-trace folder.
public struct TestTrace: TraceSource {
    public let info: TraceInfo
    public let layers: [LayerTensors]
    public var files: [(path: String, bytes: Int)] { [] }

    public struct Options: Sendable {
        public init(
            layers: Int = 4, heads: Int = 4, kvHeads: Int = 2, dim: Int = 16, prefill: Int = 48, future: Int = 8,
            spans: [Range<Int>] = [8 ..< 20, 26 ..< 38], seed: UInt64 = 1, withAttention: Bool = true, withKeys: Bool = true,
            withValues: Bool = true, withQueries: Bool = true, recordFrom: Int? = nil
        ) {
            self.layers = layers; self.heads = heads; self.kvHeads = kvHeads; self.dim = dim; self.prefill = prefill
            self.future = future; self.spans = spans; self.seed = seed; self.withAttention = withAttention; self.withKeys = withKeys
            self.withValues = withValues; self.withQueries = withQueries; self.recordFrom = recordFrom
        }
        public var layers = 4
        public var heads = 4
        public var kvHeads = 2
        public var dim = 16
        public var prefill = 48
        public var future = 8
        public var spans: [Range<Int>] = [8 ..< 20, 26 ..< 38]
        public var seed: UInt64 = 1
        public var withAttention = true
        public var withKeys = true
        public var withValues = true
        public var withQueries = true
        /// Record only rows `recordFrom ..< T` (nil: every row).
        public var recordFrom: Int? = nil
    }

    public static func tensor(_ v: [Float], _ shape: [Int], _ name: String) -> Tensor {
        let data = v.withUnsafeBufferPointer { Data(buffer: $0) }
        return Tensor(dtype: .f32, shape: shape, storage: .copying(data, name: name), offset: 0)
    }

    public init(_ o: Options = Options()) {
        let T = o.prefill + o.future, H = o.heads, G = o.kvHeads, D = o.dim
        var rng = SplitMix64(seed: o.seed)
        func gauss() -> Double {
            let u1 = (Double(rng.next() >> 11) + 1) / 9_007_199_254_740_993.0, u2 = Double(rng.next() >> 11) / 9_007_199_254_740_992.0
            return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
        }
        let map = TraceShape.defaultGQAMap(queryHeads: H, kvHeads: G)
        var modality = [Modality](repeating: .text, count: T)
        for s in o.spans { for p in s { modality[p] = .image } }
        let q0 = o.recordFrom ?? 0
        let Q = T - q0
        var built: [LayerTensors] = []
        for l in 0 ..< o.layers {
            // Keys with a few structural biases: a shared direction on sinks and some "anchor" tokens.
            let anchor = (0 ..< D).map { _ in gauss() }
            var k = [Double](repeating: 0, count: G * T * D), v = k
            for g in 0 ..< G {
                for t in 0 ..< T {
                    for d in 0 ..< D {
                        let bias = (t < 2 || t % 11 == 3) ? 1.5 * anchor[d] : 0
                        k[(g * T + t) * D + d] = gauss() + bias
                        v[(g * T + t) * D + d] = gauss()
                    }
                }
            }
            var q = [Double](repeating: 0, count: H * T * D)
            for h in 0 ..< H { for t in 0 ..< T { for d in 0 ..< D { q[(h * T + t) * D + d] = gauss() + anchor[d] * 0.8 } } }
            var attn = [Float](repeating: 0, count: H * Q * T)
            let scale = 1 / Double(D).squareRoot()
            for h in 0 ..< H {
                let g = map[h]
                for i in q0 ..< T {
                    var logits = (0 ... i).map { j in
                        (0 ..< D).reduce(0.0) { $0 + q[(h * T + i) * D + $1] * k[(g * T + j) * D + $1] } * scale
                    }
                    let m = logits.max()!
                    logits = logits.map { exp($0 - m) }
                    let s = logits.reduce(0, +)
                    for j in 0 ... i { attn[(h * Q + i - q0) * T + j] = Float(logits[j] / s) }
                }
            }
            let qRows = (0 ..< H).flatMap { h in (q0 ..< T).flatMap { i in (0 ..< D).map { Float(q[(h * T + i) * D + $0]) } } }
            built.append(
                LayerTensors(
                    layer: l, file: "synthetic",
                    attention: o.withAttention ? Self.tensor(attn, [H, Q, T], "attn") : nil,
                    queries: o.withQueries ? Self.tensor(qRows, [H, Q, D], "q") : nil,
                    keys: o.withKeys ? Self.tensor(k.map(Float.init), [G, T, D], "k") : nil,
                    values: o.withValues ? Self.tensor(v.map(Float.init), [G, T, D], "v") : nil))
        }
        layers = built
        let shape = TraceShape(
            layers: o.layers, queryHeads: H, kvHeads: G, headDim: D, seqLen: T, prefillLen: o.prefill,
            queryRows: q0 ..< T, kvHeadOfQueryHead: map)
        info = TraceInfo(
            name: "synthetic", modelName: "synthetic", shape: shape, modality: modality,
            images: o.spans.enumerated().map { ImageSpan(id: $0.offset, positions: $0.element) },
            recordedLayers: Array(0 ..< o.layers),
            contentHash: "synthetic-\(o.seed)-\(o.layers)x\(H)x\(G)x\(D)-\(o.prefill)+\(o.future)")
    }

    public func layer(_ index: Int) throws -> LayerTensors { layers[index] }
}
