import CKernels
import KVTrace
import Testing

/// The merge search's `Float` pre-pass (`ck_top2`, AVX-512, AVX2 or portable by CPU) against the
/// direct computation: every cosine as one chain of fused multiply-adds over the dimension in
/// order (what the AVX2 and AVX-512 forms compute), then the best and second over the columns.
struct MergeKernelTests {
    @Test("ck_top2 gives the best and second of the direct a·b computation, and a column attaining the best")
    func top2MatchesTheDirectComputation() {
        var rng = SplitMix64(seed: 21)
        let fused = ck_uses_avx2() != 0
        for d in [1, 7, 16, 128] {
            for c in [1, 15, 16, 17, 32, 33, 48, 50] {
                for e in [1, 5, 12, 13, 25] {
                    let a = (0 ..< e * d).map { _ in Float(Int64(bitPattern: rng.next()) >> 40) / 8_388_608 }
                    // Few distinct values, so that some rows tie for the best.
                    let b = (0 ..< c * d).map { _ in Float(Int(rng.next() % 5) - 2) / 4 }
                    var packed = [Float](repeating: .nan, count: ck_packed_count(c, d))
                    ck_pack_panels(b, c, d, &packed)
                    var best = [Float](repeating: .nan, count: e), second = best
                    var arg = [Int32](repeating: -1, count: e)
                    ck_top2(a, e, d, packed, c, &best, &second, &arg)
                    for i in 0 ..< e {
                        let v = (0 ..< c).map { j -> Float in
                            var s: Float = 0
                            for k in 0 ..< d { s = fused ? s.addingProduct(a[i * d + k], b[j * d + k]) : s + a[i * d + k] * b[j * d + k] }
                            return s
                        }
                        let sorted = v.sorted(by: >)
                        let tolerance: Float = fused ? 0 : 1e-4
                        #expect(abs(best[i] - sorted[0]) <= tolerance, "d \(d) c \(c) e \(e) row \(i)")
                        let secondExpected = c > 1 ? sorted[1] : -Float.infinity
                        #expect(second[i] == secondExpected || abs(second[i] - secondExpected) <= tolerance, "d \(d) c \(c) e \(e) row \(i)")
                        #expect(arg[i] >= 0 && Int(arg[i]) < c && abs(v[Int(arg[i])] - best[i]) <= tolerance, "d \(d) c \(c) e \(e) row \(i)")
                    }
                }
            }
        }
    }
}
