import CKernels
import Foundation
import KVTestSupport
import KVTrace
import Testing
@testable import KVPolicies

/// The C kernels behind the attention a policy reads give the very bits of the Swift loops they
/// replace: column sums of float32 rows (`ck_colsum_f32`) and the logits of recomputed rows
/// (`ck_dot_rows`, in the order of `dot`).
struct AttentionKernelTests {
    @Test("f32 column sums of causal rows with zero blocks of either sign equal the Double sums bit for bit")
    func f32ColsumWithZeroBlocks() {
        var rng = SplitMix64(seed: 5)
        for (rows, n) in [(37, 41), (64, 64), (9, 130)] {
            // Causal rows (zeros above the diagonal, some of them −0), a zero band, and −0 under the diagonal.
            var x = [Float](repeating: 0, count: rows * n)
            for i in 0 ..< rows {
                for j in 0 ..< n {
                    let v = Float(Double(rng.next() >> 11) / 9_007_199_254_740_992.0) * 1e-3
                    x[i * n + j] = j > i ? (rng.next() % 3 == 0 ? -0.0 : 0) : (j % 7 == 3 ? -0.0 : (8 ..< 16).contains(j) ? 0 : v)
                }
            }
            var acc = [Double](repeating: 0, count: n)
            x.withUnsafeBytes { ck_colsum_f32($0.baseAddress!, rows, n, n, &acc) }
            var want = [Double](repeating: 0, count: n)
            for i in 0 ..< rows { for j in 0 ..< n { want[j] += Double(x[i * n + j]) } }
            #expect(acc.map(\.bitPattern) == want.map(\.bitPattern), "\(rows) × \(n)")
            #expect(want.contains { $0 == 0 } && want.contains { $0 > 0 })
        }
    }

    @Test(
        "f32 column sums equal the row-by-row Double sums exactly (odd P and row counts, unaligned data)",
        arguments: [0, 4, 2])
    func f32ColsumIsExact(byteOffset: Int) throws {
        let H = 3, T = 53, P = 47, D = 4
        var rng = SplitMix64(seed: 11)
        // Values over many binades, so that another order of the additions would round differently.
        let attn = (0 ..< H * T * T).map { _ -> Float in
            Float(Double(rng.next() >> 11) / 9_007_199_254_740_992.0)
                * Float(sign: .plus, exponent: Int(rng.next() % 40) - 20, significand: 1)
        }
        let trace = TestTrace(
            H: H, G: H, D: D, T: T, P: P, queryRows: 0 ..< T, modality: .init(repeating: .text, count: T), images: [],
            layerData: [(attn.map(Double.init), nil, nil, nil)])
        var bytes = Data(count: byteOffset)
        attn.withUnsafeBufferPointer { bytes.append(Data(buffer: $0)) }
        let f32 = Tensor(dtype: .f32, shape: [H, T, T], storage: .copying(bytes, name: "attn"), offset: byteOffset)
        let f32Layer = LayerTensors(layer: 0, file: "memory", attention: f32)
        let viaKernel = try LayerContext(info: trace.info, tensors: f32Layer, budget: .tokens(8)).colsum()
        let viaDoubles = try LayerContext(trace: trace, layer: 0, budget: .tokens(8)).colsum()
        var expected = [Double](repeating: 0, count: H * P)
        for h in 0 ..< H { for i in 0 ..< P { for j in 0 ..< P { expected[h * P + j] += Double(attn[(h * T + i) * T + j]) } } }
        #expect(viaKernel.values.map(\.bitPattern) == expected.map(\.bitPattern))
        #expect(viaDoubles.values.map(\.bitPattern) == expected.map(\.bitPattern))
        // The order matters on these values: summing the rows backwards differs somewhere.
        var backwards = [Double](repeating: 0, count: H * P)
        for h in 0 ..< H {
            for i in (0 ..< P).reversed() { for j in 0 ..< P { backwards[h * P + j] += Double(attn[(h * T + i) * T + j]) } }
        }
        #expect(backwards != expected)
    }

    @Test("ck_dot_rows (one row of a) equals Swift's dot bit for bit, for every dimension and row count")
    func doubleDotsMatchSwiftDot() {
        var rng = SplitMix64(seed: 5)
        for d in [1, 3, 7, 8, 9, 16, 64, 127, 128, 131] {
            for c in [1, 3, 4, 5, 8, 13] {
                let a = (0 ..< d).map { _ in Double(Int64(bitPattern: rng.next()) >> 11) / 1e12 }
                let b = (0 ..< c * d).map { _ in Double(Int64(bitPattern: rng.next()) >> 11) * 1e-9 }
                var out = [Double](repeating: .nan, count: c)
                ck_dot_rows(1, c, d, a, d, b, d, &out, c)
                let expected = a.withUnsafeBufferPointer { ap in
                    b.withUnsafeBufferPointer { bp in (0 ..< c).map { dot(ap.baseAddress!, bp.baseAddress! + $0 * d, d) } }
                }
                #expect(out.map(\.bitPattern) == expected.map(\.bitPattern), "d \(d), c \(c)")
            }
        }
    }

    @Test("recomputed rows (SnapKV's window logits) are unchanged: scale·dot, causal, softmax")
    func recomputedRowsMatchTheFormula() throws {
        let H = 2, T = 21, D = 12
        let trace = TestTrace(.init(layers: 1, heads: H, kvHeads: 1, dim: D, prefill: 17, future: 4, spans: [3 ..< 9], seed: 9))
        let ctx = try LayerContext(trace: trace, layer: 0, budget: .tokens(6))
        let rows = try ctx.recomputedRows(10 ..< 17, scale: 0.3, floatSoftmax: false)
        let t = try trace.layer(0)
        let q = t.queries!.doubles(), k = t.keys!.doubles()
        for h in 0 ..< H {
            for (i, pos) in (10 ..< 17).enumerated() {
                var x = (0 ... pos).map { j in
                    q.withUnsafeBufferPointer { qp in
                        k.withUnsafeBufferPointer { kp in 0.3 * dot(qp.baseAddress! + (h * T + pos) * D, kp.baseAddress! + j * D, D) }
                    }
                }
                x.withUnsafeMutableBufferPointer { Softmax.normalize($0.baseAddress!, $0.count) }
                let got = (0 ... pos).map { rows.values[(h * 7 + i) * T + $0] }
                #expect(got.map(\.bitPattern) == x.map(\.bitPattern))
            }
        }
    }
}
