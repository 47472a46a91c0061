import CKernels
import KVTrace
import Testing
@testable import KVPolicies

/// The merge search's `Float` pre-pass (`ck_top2`, AMX, AVX-512, AVX2 or portable by CPU) against
/// the direct computation: every cosine as one chain of fused multiply-adds over the dimension in
/// order (what the AVX2 and AVX-512 forms compute), then the best and second over the columns; on
/// AMX tiles, within `ck_top2_error` of the exact value.
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
                        let amx = ck_top2_uses_amx(e, c) != 0
                        // The AMX bound is for rows of norm ≤ 1: scaled by the norms here.
                        let na = (0 ..< d).reduce(Float(0)) { $0 + a[i * d + $1] * a[i * d + $1] }.squareRoot()
                        let nb = (0 ..< c).map { j in (0 ..< d).reduce(Float(0)) { $0 + b[j * d + $1] * b[j * d + $1] }.squareRoot() }.max()!
                        let tolerance: Float = amx ? Float(ck_top2_error(d)) * na * nb * 1.01 + 1e-6 : fused ? 0 : 1e-4
                        #expect(abs(best[i] - sorted[0]) <= tolerance, "d \(d) c \(c) e \(e) row \(i)")
                        let secondExpected = c > 1 ? sorted[1] : -Float.infinity
                        #expect(second[i] == secondExpected || abs(second[i] - secondExpected) <= tolerance, "d \(d) c \(c) e \(e) row \(i)")
                        #expect(arg[i] >= 0 && Int(arg[i]) < c && abs(v[Int(arg[i])] - best[i]) <= tolerance, "d \(d) c \(c) e \(e) row \(i)")
                    }
                }
            }
        }
    }

    @Test("on AMX tiles ck_top2 stays within ck_top2_error of the exact products for unit rows, and its arg is within twice that of the best")
    func amxStaysWithinItsBound() {
        var rng = SplitMix64(seed: 77)
        func unit(_ n: Int, _ d: Int) -> [Float] {
            var x = (0 ..< n * d).map { _ in Float(Int64(bitPattern: rng.next()) >> 40) / 8_388_608 }
            for r in 0 ..< n {
                let norm = (0 ..< d).reduce(Double(0)) { $0 + Double(x[r * d + $1]) * Double(x[r * d + $1]) }.squareRoot()
                for k in 0 ..< d { x[r * d + k] = Float(Double(x[r * d + k]) / norm) }
            }
            return x
        }
        var checked = 0
        for d in [16, 36, 64, 80, 128] {
            for (e, c) in [(16, 32), (37, 47), (64, 100), (70, 33)] {
                let a = unit(e, d), b = unit(c, d)
                var packed = [Float](repeating: .nan, count: ck_packed_count(c, d))
                ck_pack_panels(b, c, d, &packed)
                var best = [Float](repeating: .nan, count: e), second = best
                var arg = [Int32](repeating: -1, count: e)
                ck_top2(a, e, d, packed, c, &best, &second, &arg)
                // The bound for these shapes: AMX's when it runs, else the f32 rounding D·2⁻²⁴ (with room).
                let bound = ck_top2_uses_amx(e, c) != 0 ? ck_top2_error(d) : Double(d) * 0x1p-23
                for i in 0 ..< e {
                    let v = (0 ..< c).map { j in (0 ..< d).reduce(Double(0)) { $0 + Double(a[i * d + $1]) * Double(b[j * d + $1]) } }
                    let sorted = v.sorted(by: >)
                    #expect(abs(Double(best[i]) - sorted[0]) <= bound, "d \(d) c \(c) e \(e) row \(i): \(best[i]) vs \(sorted[0])")
                    #expect(abs(Double(second[i]) - sorted[1]) <= bound, "d \(d) c \(c) e \(e) row \(i)")
                    #expect(arg[i] >= 0 && Int(arg[i]) < c && v[Int(arg[i])] >= sorted[0] - 2 * bound, "d \(d) c \(c) e \(e) row \(i)")
                    checked += 1
                }
            }
        }
        #expect(checked == 5 * (16 + 37 + 64 + 70))
    }

    @Test("the merge search gives the Double argmax (lowest slot on ties) when kept keys nearly tie, within the AMX error")
    func assignerSettlesOnlyWhatItMay() {
        let D = 128, C = 64, E = 96
        var rng = SplitMix64(seed: 31)
        func noise() -> Double { Double(rng.uniform() * 2 - 1) }
        // Kept keys in near-identical pairs (2k+1 = 2k + 10⁻⁵·noise) and one exact copy; evicted
        // keys close to some kept key, so that many rows' best and second lie within ck_top2_error.
        var kept = [[Double]]()
        for k in 0 ..< C {
            if k % 2 == 1 { kept.append(kept[k - 1].map { $0 + 1e-5 * noise() }) } else { kept.append((0 ..< D).map { _ in noise() }) }
        }
        kept[C - 1] = kept[C - 3]
        let evictedKeys = (0 ..< E).map { e in kept[(e * 7) % C].map { $0 + (e % 3 == 0 ? 1e-6 : 0.3) * noise() } }
        let keys = kept + evictedKeys
        func load(_ p: Int, _ out: UnsafeMutablePointer<Double>) { for d in 0 ..< D { out[d] = keys[p][d] } }
        let result = MergeAssigner.assign(dim: D, kept: Array(0 ..< C), evicted: Array(C ..< C + E), load: load)
        func unit(_ x: [Double]) -> [Double] { let n = x.withUnsafeBufferPointer { dot($0.baseAddress!, $0.baseAddress!, D) }.squareRoot(); return x.map { $0 / n } }
        let kn = kept.map(unit)
        var near = 0
        for e in 0 ..< E {
            let en = unit(evictedKeys[e])
            let cos = kn.map { k in en.withUnsafeBufferPointer { a in k.withUnsafeBufferPointer { dot(a.baseAddress!, $0.baseAddress!, D) } } }
            var best = -Double.infinity, arg = 0
            for (k, c) in cos.enumerated() where c > best { best = c; arg = k }
            let second = cos.enumerated().filter { $0.offset != arg }.map(\.element).max()!
            if best - second < 2 * max(ck_top2_error(D), 1e-5) { near += 1 }
            #expect(result.target[e] == arg && result.cosine[e] == best, "row \(e): \(result.target[e]) vs \(arg)")
        }
        #expect(near >= E / 3, "the case must have rows whose two best lie within the kernel's error")
    }
}
