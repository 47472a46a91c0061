// policybench: times `lookm` and `snapkv` on a LLaVA-geometry synthetic layer and writes the same
// data as .npy files for Benchmarks/policies_numpy.py, which runs a NumPy implementation of the
// same two policies on it, checks that both agree and prints the speed ratio.
//
// Usage: policybench [DIR] [--repeats N]   (default DIR: /tmp/kvscope-policybench)

import Foundation
import KVPolicies
import KVTrace

let args = CommandLine.arguments.dropFirst()
let dir = URL(fileURLWithPath: args.first(where: { !$0.hasPrefix("--") && Int($0) == nil }) ?? "/tmp/kvscope-policybench")
let repeats = args.firstIndex(of: "--repeats").flatMap { i in args.index(after: i) < args.endIndex ? Int(args[args.index(after: i)]) : nil } ?? 5
try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)

// LLaVA-1.5 geometry: 32 heads (MHA), head dim 128, ~2,400 prefill tokens, 3 images of 576.
let H = 32, D = 128, P = 2400, W = 32
var modality = [Modality](repeating: .text, count: P)
let spans = [35 ..< 611, 621 ..< 1197, 1207 ..< 1783]
for s in spans { for p in s { modality[p] = .image } }

var rng = SplitMix64(seed: 2024)
// Keys and values (stored as f16, as traces usually are) with structural biases: a shared
// direction per head for sinks and some text, image tokens of one image correlated.
var k = [Float](repeating: 0, count: H * P * D), v = k
for h in 0 ..< H {
    let anchor = (0 ..< D).map { _ in Float(rng.normal()) }
    let imageDir = (0 ..< 3).map { _ in (0 ..< D).map { _ in Float(rng.normal()) } }
    for t in 0 ..< P {
        let img = spans.firstIndex { $0.contains(t) }
        for d in 0 ..< D {
            var x = Float(rng.normal())
            if t < 4 || t % 17 == 0 { x += 1.5 * anchor[d] }
            if let i = img { x += 0.8 * imageDir[i][d] }
            k[(h * P + t) * D + d] = Float(Float16(x))
            v[(h * P + t) * D + d] = Float(Float16(Float(rng.normal())))
        }
    }
}
// Column sums over the prefill (what attn-trace stores as attn_colsum): causal decay with
// heavy sinks and a few heavy hitters, different per head.
var colsum = [Float](repeating: 0, count: H * P)
for h in 0 ..< H { for j in 0 ..< P {
    let base = Double(P - j) / Double(P) * 0.6
    let heavy = (j < 4 ? 200.0 : 0) + (rng.uniform() < 0.03 ? 5 * rng.uniform() : 0)
    let img = modality[j] == .image ? 0.5 : 1.0
    colsum[h * P + j] = Float(base * img * (0.5 + rng.uniform()) + heavy)
} }
// Window rows [P−W, P): causal softmax of q·k/√D from random queries, for SnapKV.
var q = [Float](repeating: 0, count: H * W * D)
for i in q.indices { q[i] = Float(Float16(Float(rng.normal()))) }
var attn = [Float](repeating: 0, count: H * W * P)
for h in 0 ..< H { for i in 0 ..< W {
    let pos = P - W + i
    var logits = [Double](repeating: 0, count: pos + 1)
    for j in 0 ... pos {
        var s = 0.0
        for d in 0 ..< D { s += Double(q[(h * W + i) * D + d]) * Double(k[(h * P + j) * D + d]) }
        logits[j] = s / Double(D).squareRoot()
    }
    let m = logits.max()!
    let e = logits.map { Foundation.exp($0 - m) }
    let z = e.reduce(0, +)
    for j in 0 ... pos { attn[(h * W + i) * P + j] = Float(e[j] / z) }
} }

func tensor(_ x: [Float], _ shape: [Int], _ dtype: DType, _ name: String) -> Tensor {
    let t = TensorData(name: name, floats: x, shape: shape, as: dtype)
    return Tensor(dtype: dtype, shape: shape, storage: .copying(t.data, name: name), offset: 0)
}
let tensors = LayerTensors(layer: 0, file: "policybench",
                           attention: tensor(attn, [H, W, P], .f32, "attn"), colsum: tensor(colsum, [H, P], .f32, "attn_colsum"),
                           queries: tensor(q, [H, W, D], .f16, "q"), keys: tensor(k, [H, P, D], .f16, "k"), values: tensor(v, [H, P, D], .f16, "v"))
let shape = TraceShape(layers: 1, queryHeads: H, kvHeads: H, headDim: D, seqLen: P, prefillLen: P, queryRows: P - W ..< P,
                       kvHeadOfQueryHead: Array(0 ..< H))
let info = TraceInfo(name: "policybench", modelName: "llava-1.5-geometry", shape: shape, modality: modality,
                     images: spans.enumerated().map { ImageSpan(id: $0.offset, positions: $0.element) }, recordedLayers: [0])

// The data for NumPy.
func npy(_ name: String, _ t: TensorData) throws { try NPYWriter.encode(t).write(to: dir.appendingPathComponent(name + ".npy")) }
try npy("colsum", TensorData(name: "colsum", floats: colsum, shape: [H, P], as: .f32))
try npy("attn", TensorData(name: "attn", floats: attn, shape: [H, W, P], as: .f32))
try npy("k", TensorData(name: "k", floats: k, shape: [H, P, D], as: .f16))
try npy("v", TensorData(name: "v", floats: v, shape: [H, P, D], as: .f16))
try npy("text", TensorData(name: "text", ints: modality.map { $0 == .text ? 1 : 0 }, shape: [P], as: .u8))

let budget = BudgetSpec.fraction(0.2)
let ctx = LayerContext(info: info, tensors: tensors, budget: budget, options: PolicyOptions(fidelity: .code))

func time(_ label: String, _ body: () throws -> Void) rethrows -> Double {
    var samples: [Double] = []
    for _ in 0 ..< repeats {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    samples.sort()
    let median = samples[samples.count / 2]
    print(String(format: "swift  %-8@ median %8.4f s  (min %.4f, %d runs)", label as NSString, median, samples[0], repeats))
    return median
}

let lookm = LookM()
let snap = SnapKV()
var lookmOut: CompressedLayer?
var snapDecision: LayerDecision?
// lookm: decide (scores, text prior, cosine assignment) + apply the merge, reading K/V from the
// trace tensors one head at a time.
let tLookm = try time("lookm") {
    let d = try lookm.decide(ctx)
    lookmOut = try DecisionApplier.apply(d, context: ctx)
}
// snapkv: window scores from the recorded rows, pooling, selection (no merge: nothing to apply).
let tSnap = try time("snapkv") { snapDecision = try snap.decide(ctx) }

let out = lookmOut!
let C = out.heads[0].kept.count, Cs = snapDecision!.heads[0].kept.count
try npy("swift_lookm_kept", TensorData(name: "kept", ints: out.heads.flatMap(\.kept), shape: [H, C]))
try npy("swift_lookm_keys", TensorData(name: "keys", doubles: out.heads.flatMap(\.keys), shape: [H, C, D]))
try npy("swift_lookm_values", TensorData(name: "values", doubles: out.heads.flatMap(\.values), shape: [H, C, D]))
try npy("swift_snapkv_kept", TensorData(name: "kept", ints: snapDecision!.heads.flatMap(\.kept), shape: [H, Cs]))
let timing = ["lookm": tLookm, "snapkv": tSnap, "H": Double(H), "P": Double(P), "D": Double(D), "budget": 0.2, "window": Double(W)]
try JSONSerialization.data(withJSONObject: timing, options: [.sortedKeys]).write(to: dir.appendingPathComponent("swift_times.json"))
print("lookm keeps \(C) per head (nominal \(ctx.budget.nominal)), \(out.heads[0].mergeTarget.count) merged per head; snapkv keeps \(Cs)")
print("wrote \(dir.path); now run: python3 Benchmarks/policies_numpy.py \(dir.path)")

// Breakdown of lookm: selection alone, then selection + merge assignment (no K/V output).
_ = try time("text-prior") { _ = try TextPrior().decide(ctx) }
_ = try time("lookm-dec") { _ = try lookm.decide(ctx) }
