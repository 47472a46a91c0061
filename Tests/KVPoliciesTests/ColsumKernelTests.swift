import Foundation
import KVTestSupport
import KVTrace
import Testing
@testable import KVPolicies

/// The column sums of float32 attention, summed straight from the rows by `ck_colsum_f32`, are
/// bit-identical to widening every row to Double and adding the rows in ascending order.
struct ColsumKernelTests {
    @Test(
        "f32 column sums equal the row-by-row Double sums exactly (odd P and row counts, unaligned data)",
        arguments: [0, 4, 2])
    func f32ColsumIsExact(byteOffset: Int) throws {
        let H = 3, T = 53, P = 47, D = 4
        var rng = SplitMix64(seed: 11)
        // Values over many binades, so that another order of the additions would round differently.
        let attn = (0 ..< H * T * T).map { _ -> Float in
            Float(Double(rng.next() >> 11) / 9_007_199_254_740_992.0) * Float(sign: .plus, exponent: Int(rng.next() % 40) - 20, significand: 1)
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
        for h in 0 ..< H { for i in (0 ..< P).reversed() { for j in 0 ..< P { backwards[h * P + j] += Double(attn[(h * T + i) * T + j]) } } }
        #expect(backwards != expected)
    }
}
