/// What a merge scatters into the kept slots (POLICIES.md §4.6).
public enum MergeStrategy: String, Sendable, Hashable, Codable, CaseIterable {
    /// Every evicted token adds `(K[ε] + K[κ_t])/2` to its nearest kept key (LOOK-M's pivotal merge).
    case pivotal
    /// Filtered tokens add `K[ε]` (rank-mismatched sources in `code` mode).
    case average
    /// Filtered tokens add `μ·K[ε]` (unnormalised, as in the official code).
    case weighted
}

/// How averaged-merge sources are paired with their targets.
public enum MergePairing: String, Sendable, Hashable, Codable, CaseIterable {
    /// The j-th filtered target receives the j-th evicted token (the official code).
    case rankMismatched = "rank-mismatched"
    /// The j-th filtered target receives its own token.
    case paired
}

/// The nearest-kept-key assignment (steps 1–2 of POLICIES.md §4.6).
public enum MergeAssigner {
    /// For each evicted position, the kept slot whose key has the largest cosine with its key
    /// (lowest slot on ties) and that cosine. A zero-norm key has cosine 0 with everything.
    /// `keys` is `[KVH][P][D]`; `g` the KV head.
    public static func assign(keys: KVBlock, head g: Int, kept: [Int], evicted: [Int]) -> (target: [Int], cosine: [Double]) {
        let D = keys.dim, C = kept.count, E = evicted.count
        guard C > 0, E > 0 else { return (Array(repeating: -1, count: E), Array(repeating: 0, count: E)) }
        var kn = [Double](repeating: 0, count: C * D)
        var en = [Double](repeating: 0, count: E * D)
        keys.values.withUnsafeBufferPointer { kb in
            func normalize(_ positions: [Int], into out: UnsafeMutablePointer<Double>) {
                for (r, p) in positions.enumerated() {
                    let src = kb.baseAddress! + keys.offset(g, p)
                    let n = dot(src, src, D).squareRoot()
                    let dst = out + r * D
                    if n > 0 { for d in 0 ..< D { dst[d] = src[d] / n } }
                }
            }
            kn.withUnsafeMutableBufferPointer { normalize(kept, into: $0.baseAddress!) }
            en.withUnsafeMutableBufferPointer { normalize(evicted, into: $0.baseAddress!) }
        }
        var target = [Int](repeating: 0, count: E)
        var cosine = [Double](repeating: 0, count: E)
        // A Float pass finds, for four evicted rows at a time, every slot within `margin` of the
        // row's Float maximum; those candidates are re-scored in Double, so the argmax (lowest
        // slot on ties) and μ are the Double ones. Float error on unit vectors is ≲ D·2⁻²³ ≪ margin.
        let margin: Float = 1e-3
        let knf = kn.map { Float($0) }, enf = en.map { Float($0) }
        var sf = [Float](repeating: 0, count: 4 * C)
        kn.withUnsafeBufferPointer { kb in
            en.withUnsafeBufferPointer { eb in
                knf.withUnsafeBufferPointer { kfb in
                    enf.withUnsafeBufferPointer { efb in
                        sf.withUnsafeMutableBufferPointer { sb in
                            let k0 = kb.baseAddress!, e0 = eb.baseAddress!, kf = kfb.baseAddress!, ef = efb.baseAddress!, s0 = sb.baseAddress!
                            var e = 0
                            while e < E {
                                let rows = min(4, E - e)
                                let r0 = ef + e * D, r1 = ef + (e + min(1, rows - 1)) * D
                                let r2 = ef + (e + min(2, rows - 1)) * D, r3 = ef + (e + min(3, rows - 1)) * D
                                for k in 0 ..< C {
                                    let kr = kf + k * D
                                    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
                                    var d = 0
                                    while d + 16 <= D {
                                        let kv = UnsafeRawPointer(kr + d).loadUnaligned(as: SIMD16<Float>.self)
                                        a0 += kv * UnsafeRawPointer(r0 + d).loadUnaligned(as: SIMD16<Float>.self)
                                        a1 += kv * UnsafeRawPointer(r1 + d).loadUnaligned(as: SIMD16<Float>.self)
                                        a2 += kv * UnsafeRawPointer(r2 + d).loadUnaligned(as: SIMD16<Float>.self)
                                        a3 += kv * UnsafeRawPointer(r3 + d).loadUnaligned(as: SIMD16<Float>.self)
                                        d += 16
                                    }
                                    var t0 = a0.sum(), t1 = a1.sum(), t2 = a2.sum(), t3 = a3.sum()
                                    while d < D {
                                        t0 += kr[d] * r0[d]; t1 += kr[d] * r1[d]; t2 += kr[d] * r2[d]; t3 += kr[d] * r3[d]
                                        d += 1
                                    }
                                    s0[k] = t0; s0[C + k] = t1; s0[2 * C + k] = t2; s0[3 * C + k] = t3
                                }
                                for u in 0 ..< rows {
                                    let su = s0 + u * C
                                    var mf = -Float.infinity
                                    for k in 0 ..< C { mf = Swift.max(mf, su[k]) }
                                    var best = -Double.infinity, arg = 0
                                    for k in 0 ..< C where su[k] >= mf - margin {
                                        let s = dot(e0 + (e + u) * D, k0 + k * D, D)
                                        if s > best { best = s; arg = k }
                                    }
                                    target[e + u] = arg
                                    cosine[e + u] = best
                                }
                                e += rows
                            }
                        }
                    }
                }
            }
        }
        return (target, cosine)
    }
}
