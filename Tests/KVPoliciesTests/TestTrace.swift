import Foundation
import KVTrace
@testable import KVPolicies

/// A small in-memory trace: random q, k, v, causal softmax attention over every row (prefill and
/// future), two image spans, optional GQA. Deterministic from `seed`.
struct TestTrace: TraceSource {
    let info: TraceInfo
    let layers: [LayerTensors]
    var files: [(path: String, bytes: Int)] { [] }

    struct Options {
        var layers = 4
        var heads = 4
        var kvHeads = 2
        var dim = 16
        var prefill = 48
        var future = 8
        var spans: [Range<Int>] = [8 ..< 20, 26 ..< 38]
        var seed: UInt64 = 1
        var withAttention = true
        var withKeys = true
        var withValues = true
        var withQueries = true
        /// Record only rows `recordFrom ..< T` (nil: every row).
        var recordFrom: Int? = nil
    }

    static func tensor(_ v: [Float], _ shape: [Int], _ name: String) -> Tensor {
        let data = v.withUnsafeBufferPointer { Data(buffer: $0) }
        return Tensor(dtype: .f32, shape: shape, storage: .copying(data, name: name), offset: 0)
    }

    init(_ o: Options = Options()) {
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
            for g in 0 ..< G { for t in 0 ..< T { for d in 0 ..< D {
                let bias = (t < 2 || t % 11 == 3) ? 1.5 * anchor[d] : 0
                k[(g * T + t) * D + d] = gauss() + bias
                v[(g * T + t) * D + d] = gauss()
            } } }
            var q = [Double](repeating: 0, count: H * T * D)
            for h in 0 ..< H { for t in 0 ..< T { for d in 0 ..< D { q[(h * T + t) * D + d] = gauss() + anchor[d] * 0.8 } } }
            var attn = [Float](repeating: 0, count: H * Q * T)
            let scale = 1 / Double(D).squareRoot()
            for h in 0 ..< H {
                let g = map[h]
                for i in q0 ..< T {
                    var logits = (0 ... i).map { j in (0 ..< D).reduce(0.0) { $0 + q[(h * T + i) * D + $1] * k[(g * T + j) * D + $1] } * scale }
                    let m = logits.max()!
                    logits = logits.map { exp($0 - m) }
                    let s = logits.reduce(0, +)
                    for j in 0 ... i { attn[(h * Q + i - q0) * T + j] = Float(logits[j] / s) }
                }
            }
            let qRows = (0 ..< H).flatMap { h in (q0 ..< T).flatMap { i in (0 ..< D).map { Float(q[(h * T + i) * D + $0]) } } }
            built.append(LayerTensors(layer: l, file: "synthetic",
                                      attention: o.withAttention ? Self.tensor(attn, [H, Q, T], "attn") : nil,
                                      queries: o.withQueries ? Self.tensor(qRows, [H, Q, D], "q") : nil,
                                      keys: o.withKeys ? Self.tensor(k.map(Float.init), [G, T, D], "k") : nil,
                                      values: o.withValues ? Self.tensor(v.map(Float.init), [G, T, D], "v") : nil))
        }
        layers = built
        let shape = TraceShape(layers: o.layers, queryHeads: H, kvHeads: G, headDim: D, seqLen: T, prefillLen: o.prefill,
                               queryRows: q0 ..< T, kvHeadOfQueryHead: map)
        info = TraceInfo(name: "synthetic", modelName: "synthetic", shape: shape, modality: modality,
                         images: o.spans.enumerated().map { ImageSpan(id: $0.offset, positions: $0.element) },
                         recordedLayers: Array(0 ..< o.layers))
    }

    func layer(_ index: Int) throws -> LayerTensors { layers[index] }
}

/// Mean attention recall (METRICS.md) of one KV head's kept set over the evaluation rows `i ≥ P`
/// and the query heads of the group: the share of each row's attention on kept or generated keys.
func attentionRecall(_ ctx: LayerContext, kvHead g: Int, kept: [Int]) throws -> Double {
    let P = ctx.compressionPoint, qr = ctx.info.shape.queryRows
    let rows = try ctx.rows(max(P, qr.lowerBound) ..< qr.upperBound)
    let keep = Set(kept)
    var total = 0.0, n = 0
    for h in ctx.info.shape.queryHeads(ofKVHead: g) {
        for i in 0 ..< rows.positions.count {
            let pos = rows.positions.lowerBound + i
            var all = 0.0, hit = 0.0
            for j in 0 ... pos {
                let a = rows[h, i, j]
                all += a
                if j >= P || keep.contains(j) { hit += a }
            }
            total += hit / all
            n += 1
        }
    }
    return total / Double(n)
}
