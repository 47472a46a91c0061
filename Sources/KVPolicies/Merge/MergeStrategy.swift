import KVTrace
import CKernels

/// What a merge scatters into the kept slots (docs/policies.md#the-merge-wrapper).
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

/// The nearest-kept-key assignment (steps 1–2 of docs/policies.md#the-merge-wrapper).
public enum MergeAssigner {
    /// For each evicted position, the kept slot whose key has the largest cosine with its key
    /// (lowest slot on ties) and that cosine. A zero-norm key has cosine 0 with everything.
    /// `keys` is `[KVH][P][D]`; `g` the KV head.
    public static func assign(keys: KVBlock, head g: Int, kept: [Int], evicted: [Int]) -> (target: [Int], cosine: [Double]) {
        keys.values.withUnsafeBufferPointer { kb in
            let base = kb.baseAddress! + keys.offset(g, 0), D = keys.dim
            return assign(dim: D, kept: kept, evicted: evicted) { p, out in out.update(from: base + p * D, count: D) }
        }
    }

    /// How far apart two `Float` cosines of dimension `D` must be for their order to be the
    /// `Double` one: `max(10⁻⁴, D·2.4·10⁻⁷)`, well above the `Float` error `D·2⁻²⁴`.
    static func margin(_ D: Int) -> Float { Swift.max(Float(1e-4), Float(D) * 2.4e-7) }

    /// How far `ck_top2`'s best must beat its second for a row to be settled from it:
    /// `margin(D) + 2·ck_top2_error(D)`. With the f32 kernels that is `margin(D)`; with AMX
    /// (bf16 tile products, each sum within `ck_top2_error(D)` of the exact one) a gap above it
    /// still leaves the exact gap above `margin(D)`, so the settled target is the `Double` one.
    static func settleMargin(_ D: Int) -> Float { margin(D) + 2 * Float(ck_top2_error(D)) }

    /// Writes the unit keys of `positions` (each loaded by `load` into `src`) row by row into
    /// `out` (`Double`) and `outf` (the same rounded to `Float`); a zero key stays zero. False
    /// when some norm is not finite.
    static func normalize<S: Sequence<Int>>(
        _ positions: S, dim D: Int, into out: UnsafeMutablePointer<Double>, _ outf: UnsafeMutablePointer<Float>,
        scratch src: UnsafeMutablePointer<Double>, load: (Int, UnsafeMutablePointer<Double>) -> Void
    ) -> Bool {
        var finite = true
        for (r, p) in positions.enumerated() {
            load(p, src)
            let n = dot(src, src, D).squareRoot()
            if !n.isFinite { finite = false }
            let dst = out + r * D, dstf = outf + r * D
            if n > 0 {
                for d in 0 ..< D { let x = src[d] / n; dst[d] = x; dstf[d] = Float(x) }
            } else {
                dst.update(repeating: 0, count: D)
                dstf.update(repeating: 0, count: D)
            }
        }
        return finite
    }

    /// The same for one head whose key at position `p` is written by `load(p, out)` (`D` values).
    ///
    /// Keys are normalised in `Double`. A `Float` pass (CKernels' fused top-2 kernel: the best and
    /// second-best cosine of each evicted key, without materialising the E×C matrix) settles every
    /// row whose best beats its second by more than `settleMargin` (`margin`, widened when the
    /// kernel runs on AMX tiles); the few others are re-scored: every slot within `margin` of the
    /// row's `Float` maximum (the f32 `ck_dots`) is scored in `Double`. The target (lowest slot on
    /// ties) and μ are therefore the `Double` ones. `Float` error on unit vectors is at most about
    /// `D·2⁻²⁴` per cosine, far below `margin`. `scratch` may be reused across calls
    /// on one thread. With a `ranking` (the head's, from the layer's work cache) the `Float` pass
    /// reads what earlier settings of the layer already searched; the result is the same.
    static func assign(
        dim D: Int, kept: [Int], evicted: [Int], scratch: AssignScratch = AssignScratch(),
        ranking: CandidateRanking? = nil, load: (Int, UnsafeMutablePointer<Double>) -> Void
    ) -> (target: [Int], cosine: [Double]) {
        let C = kept.count, E = evicted.count
        guard C > 0, E > 0 else { return (Array(repeating: -1, count: E), Array(repeating: 0, count: E)) }
        let m = scratch
        m.reserve(C: C, E: E, D: D)
        let kn = m.kn.base, en = m.en.base, kf = m.knf.base, ef = m.enf.base, src = m.src.base
        let keptFinite = normalize(kept, dim: D, into: kn, kf, scratch: src, load: load)
        let finite = normalize(evicted, dim: D, into: en, ef, scratch: src, load: load) && keptFinite
        let margin = Self.margin(D), settle = Self.settleMargin(D)
        let row = m.row.base
        var target = [Int](repeating: 0, count: E)
        var cosine = [Double](repeating: 0, count: E)
        target.withUnsafeMutableBufferPointer { tb in
            cosine.withUnsafeMutableBufferPointer { cb in
                let t0 = tb.baseAddress!, c0 = cb.baseAddress!
                /// Re-scores row `e` from its `Float` cosines with every slot.
                func rescore(_ e: Int, all: Bool) {
                    ck_dots(ef + e * D, kf, C, D, row)
                    var mf = -Float.infinity
                    for k in 0 ..< C { mf = Swift.max(mf, row[k]) }
                    var best = -Double.infinity, arg = 0
                    for k in 0 ..< C where all || row[k] >= mf - margin {
                        let s = dot(en + e * D, kn + k * D, D)
                        if s > best { best = s; arg = k }
                    }
                    t0[e] = arg
                    c0[e] = best
                }
                if !finite {
                    // NaN or infinite keys: score every slot in Double.
                    for e in 0 ..< E { rescore(e, all: true) }
                    return
                }
                if let ranking {
                    ranking.top2(
                        kept: kept, evicted: evicted, dim: D, keptKeys: kf, evictedKeys: ef, scratch: m,
                        best: m.best.base, second: m.second.base, arg: m.arg.base)
                } else {
                    ck_pack_panels(kf, C, D, m.packed.base)
                    ck_top2(ef, E, D, m.packed.base, C, m.best.base, m.second.base, m.arg.base)
                }
                for e in 0 ..< E {
                    if m.best.base[e] - m.second.base[e] > settle {
                        let k = Int(m.arg.base[e])
                        t0[e] = k
                        c0[e] = dot(en + e * D, kn + k * D, D)
                    } else {
                        rescore(e, all: false)
                    }
                }
            }
        }
        return (target, cosine)
    }
}

extension MergeAssigner {
    /// The assignment under a merge scope: evicted rank `e` searches only the kept slots `k` with
    /// `groups[kept[k]] == groups[evicted[e]]` (lowest slot on ties, as in the unrestricted search);
    /// a rank whose group has no kept slot gets target −1 and cosine 0: it is dropped.
    static func assign(
        dim D: Int, kept: [Int], evicted: [Int], groups: [TokenGroup], scratch: AssignScratch = AssignScratch(),
        load: (Int, UnsafeMutablePointer<Double>) -> Void
    ) -> (target: [Int], cosine: [Double]) {
        var slots: [TokenGroup: [Int]] = [:], ranks: [TokenGroup: [Int]] = [:]
        for (k, p) in kept.enumerated() { slots[groups[p], default: []].append(k) }
        for (e, p) in evicted.enumerated() { ranks[groups[p], default: []].append(e) }
        var target = [Int](repeating: -1, count: evicted.count)
        var cosine = [Double](repeating: 0, count: evicted.count)
        for (group, es) in ranks.sorted(by: { $0.key < $1.key }) {
            guard let ks = slots[group] else { continue }
            let (t, c) = assign(dim: D, kept: ks.map { kept[$0] }, evicted: es.map { evicted[$0] }, scratch: scratch, load: load)
            for (n, e) in es.enumerated() {
                target[e] = ks[t[n]]
                cosine[e] = c[n]
            }
        }
        return (target, cosine)
    }
}

/// Working memory of `MergeAssigner.assign`, grown on demand and reused by one thread at a time.
final class AssignScratch {
    let kn = ScratchBuffer<Double>(), en = ScratchBuffer<Double>(), knf = ScratchBuffer<Float>(), enf = ScratchBuffer<Float>()
    let packed = ScratchBuffer<Float>(), row = ScratchBuffer<Float>(), src = ScratchBuffer<Double>()
    let best = ScratchBuffer<Float>(), second = ScratchBuffer<Float>(), arg = ScratchBuffer<Int32>()
    // `CandidateRanking`'s: gathered kept keys, gathered evicted keys, one search's top-2, slot of
    // each position, kept bits of each block.
    let gather = ScratchBuffer<Float>(), rowKeys = ScratchBuffer<Float>()
    let b2 = ScratchBuffer<Float>(), s2 = ScratchBuffer<Float>(), a2 = ScratchBuffer<Int32>()
    let slotOf = ScratchBuffer<Int32>(), bits = ScratchBuffer<UInt64>()

    init() {}

    /// Room for `c` kept and `e` evicted keys of dimension `d`.
    func reserve(C c: Int, E e: Int, D d: Int) {
        src.reserve(d)
        kn.reserve(c * d)
        en.reserve(e * d)
        for b in [knf, gather] { b.reserve(c * d) }
        for b in [enf, rowKeys] { b.reserve(e * d) }
        packed.reserve(ck_packed_count(c, d))
        row.reserve(c)
        for b in [best, second, b2, s2] { b.reserve(e) }
        for b in [arg, a2] { b.reserve(e) }
    }

    /// Room for `CandidateRanking`'s per-position slots and per-block bits.
    func reserveRanking(P: Int, blocks: Int) {
        slotOf.reserve(P)
        bits.reserve(blocks)
    }
}

/// One growable scratch array of `T` (contents undefined after growing).
final class ScratchBuffer<T> {
    private(set) var base = UnsafeMutablePointer<T>.allocate(capacity: 1)
    private var capacity = 1

    /// Room for `n` elements.
    func reserve(_ n: Int) {
        guard n > capacity else { return }
        base.deallocate()
        base = .allocate(capacity: n)
        capacity = n
    }

    deinit { base.deallocate() }
}
