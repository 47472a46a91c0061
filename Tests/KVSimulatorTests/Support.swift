import Foundation
import KVPolicies
import KVTrace
@testable import KVSimulator

/// An in-memory trace from explicit Double arrays (stored as f64, so values are exact).
struct ArrayTrace: TraceSource {
    let info: TraceInfo
    let layers: [LayerTensors]
    var files: [(path: String, bytes: Int)] { [] }
    func layer(_ index: Int) throws -> LayerTensors { layers[index] }

    static func tensor(_ v: [Double], _ shape: [Int], _ name: String) -> Tensor {
        let data = v.withUnsafeBufferPointer { Data(buffer: $0) }
        return Tensor(dtype: .f64, shape: shape, storage: .copying(data, name: name), offset: 0)
    }

    /// One layer per element of `layerData`: (attn [H,Q,T], q [H,Q,D], k [G,T,D], v [G,T,D]); any may be nil.
    init(H: Int, G: Int, D: Int, T: Int, P: Int, queryRows: Range<Int>, modality: [Modality], images: [ImageSpan],
         scale: Double? = nil, layerData: [(attn: [Double]?, q: [Double]?, k: [Double]?, v: [Double]?)]) {
        let Q = queryRows.count
        layers = layerData.enumerated().map { l, d in
            LayerTensors(layer: l, file: "memory",
                         attention: d.attn.map { Self.tensor($0, [H, Q, T], "attn") },
                         queries: d.q.map { Self.tensor($0, [H, Q, D], "q") },
                         keys: d.k.map { Self.tensor($0, [G, T, D], "k") },
                         values: d.v.map { Self.tensor($0, [G, T, D], "v") })
        }
        let shape = TraceShape(layers: layerData.count, queryHeads: H, kvHeads: G, headDim: D, seqLen: T, prefillLen: P,
                               queryRows: queryRows, kvHeadOfQueryHead: TraceShape.defaultGQAMap(queryHeads: H, kvHeads: G))
        info = TraceInfo(name: "memory", modelName: "memory", shape: shape, modality: modality, images: images,
                         recordedLayers: Array(0 ..< layerData.count), attnScale: scale, contentHash: "memoryhash")
    }

    /// The hand trace: T = 4, P = 3, one head, D = 2, scale 1. Row 3 attends A = [0.4, 0.1, 0.2, 0.3]
    /// (keys k_j = (ln a_j, 0), query (1, 0)); position 1 is an image token.
    static func hand(withQueries: Bool = true, P: Int = 3, rows: Range<Int> = 3 ..< 4) -> ArrayTrace {
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
        return ArrayTrace(H: 1, G: 1, D: 2, T: 4, P: P, queryRows: rows, modality: [.text, .image, .text, .text],
                          images: [ImageSpan(id: 0, positions: 1 ..< 2)], scale: 1,
                          layerData: [(attn: attn, q: withQueries ? q : nil, k: k, v: v)])
    }

    /// A random trace with exact causal-softmax attention on every row, images at 8..<16 and 20..<24.
    static func random(layers: Int = 2, H: Int = 4, G: Int = 2, D: Int = 8, P: Int = 32, future: Int = 8, seed: UInt64 = 7) -> ArrayTrace {
        let T = P + future
        var rng = SplitMix64(seed: seed)
        func u() -> Double { Double(rng.next() >> 11) / 9_007_199_254_740_992.0 * 2 - 1 }
        let map = TraceShape.defaultGQAMap(queryHeads: H, kvHeads: G)
        let scale = 1 / Double(D).squareRoot()
        var data: [(attn: [Double]?, q: [Double]?, k: [Double]?, v: [Double]?)] = []
        for _ in 0 ..< layers {
            let k = (0 ..< G * T * D).map { i in u() * 2 + ((i / D) % T < 2 ? 1.5 : 0) }
            let v = (0 ..< G * T * D).map { _ in u() }
            let q = (0 ..< H * T * D).map { _ in u() * 2 + 0.5 }
            var attn = [Double](repeating: 0, count: H * T * T)
            for h in 0 ..< H { for i in 0 ..< T {
                let g = map[h]
                let logits = (0 ... i).map { j in scale * (0 ..< D).reduce(0.0) { $0 + q[(h * T + i) * D + $1] * k[(g * T + j) * D + $1] } }
                let m = logits.max()!
                let e = logits.map { Foundation.exp($0 - m) }
                let s = e.reduce(0, +)
                for j in 0 ... i { attn[(h * T + i) * T + j] = e[j] / s }
            } }
            data.append((attn: attn, q: q, k: k, v: v))
        }
        var modality = [Modality](repeating: .text, count: T)
        for p in 8 ..< 16 { modality[p] = .image }
        for p in 20 ..< 24 { modality[p] = .image }
        return ArrayTrace(H: H, G: G, D: D, T: T, P: P, queryRows: 0 ..< T, modality: modality,
                          images: [ImageSpan(id: 0, positions: 8 ..< 16), ImageSpan(id: 1, positions: 20 ..< 24)], layerData: data)
    }
}

/// `../shared` beside the project.
let sharedDir: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared")
let sharedExists = FileManager.default.fileExists(atPath: sharedDir.appendingPathComponent("traces/smollm2-chat-full/trace.json").path)

/// Evaluates `metrics` for one hand-made decision on layer 0.
func evaluate(_ trace: ArrayTrace, decision: LayerDecision, merges: Bool = false, settings: EvaluationSettings = .init(topK: 2),
              metrics: [any Metric] = MetricCatalogue.all) throws -> (ReplayLayer, EvaluationContext, [String: MetricValue]) {
    let ctx = LayerContext(info: trace.info, tensors: try trace.layer(0), budget: .fraction(1), compressionPoint: settings.compressionPoint)
    let ec = EvaluationContext(ctx, settings: settings)
    let rl = ReplayLayer(decision, merges: merges, context: ec)
    var out: [String: MetricValue] = [:]
    for m in metrics {
        if let why = m.missing(rl, ec) {
            for s in m.series(trace.info, compressionPoint: ec.compressionPoint) { out[s.metric] = MetricValue(s.metric, value: nil, note: why) }
            continue
        }
        for v in try m.evaluate(rl, ec) { out[v.image.map { "\(v.metric)[\($0)]" } ?? v.metric] = v }
    }
    return (rl, ec, out)
}
