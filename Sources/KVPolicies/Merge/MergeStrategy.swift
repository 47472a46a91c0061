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

    /// The same for one head whose key at position `p` is written by `load(p, out)` (`D` values).
    ///
    /// Keys are normalised in `Double`. A `Float` pass (CKernels' fused top-2 kernel: the best and
    /// second-best cosine of each evicted key, without materialising the E×C matrix) settles every
    /// row whose best beats its second by more than `margin`; the few others are re-scored: every
    /// slot within `margin` of the row's `Float` maximum is scored in `Double`. The target (lowest
    /// slot on ties) and μ are therefore the `Double` ones. `Float` error on unit vectors is at
    /// most about `D·2⁻²⁴` per cosine, far below `margin`. `scratch` may be reused across calls
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
        let kn = m.kn, en = m.en, kf = m.knf, ef = m.enf, src = m.src
        var finite = true
        func normalize(_ positions: [Int], into out: UnsafeMutablePointer<Double>, _ outf: UnsafeMutablePointer<Float>) {
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
        }
        normalize(kept, into: kn, kf)
        normalize(evicted, into: en, ef)
        let margin = Swift.max(Float(1e-4), Float(D) * 2.4e-7)
        let row = m.row
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
                        best: m.best, second: m.second, arg: m.arg)
                } else {
                    ck_pack_panels(kf, C, D, m.packed)
                    ck_top2(ef, E, D, m.packed, C, m.best, m.second, m.arg)
                }
                for e in 0 ..< E {
                    if m.best[e] - m.second[e] > margin {
                        let k = Int(m.arg[e])
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
    private(set) var kn = UnsafeMutablePointer<Double>.allocate(capacity: 1), en = UnsafeMutablePointer<Double>.allocate(capacity: 1)
    private(set) var knf = UnsafeMutablePointer<Float>.allocate(capacity: 1), enf = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var packed = UnsafeMutablePointer<Float>.allocate(capacity: 1), row = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var best = UnsafeMutablePointer<Float>.allocate(capacity: 1), second = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var arg = UnsafeMutablePointer<Int32>.allocate(capacity: 1), src = UnsafeMutablePointer<Double>.allocate(capacity: 1)
    // `CandidateRanking`'s: gathered kept keys, gathered evicted keys, one search's top-2, slot of
    // each position, kept bits of each block.
    private(set) var gather = UnsafeMutablePointer<Float>.allocate(capacity: 1), rowKeys = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var b2 = UnsafeMutablePointer<Float>.allocate(capacity: 1), s2 = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var a2 = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    private(set) var slotOf = UnsafeMutablePointer<Int32>.allocate(capacity: 1), bits = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    private var capC = 0, capE = 0, capD = 0, capP = 0, capBlocks = 0

    init() {}

    /// Room for `c` kept and `e` evicted keys of dimension `d`.
    func reserve(C c: Int, E e: Int, D d: Int) {
        if d > capD {
            capD = d
            capC = 0
            capE = 0
            src.deallocate(); src = .allocate(capacity: d)
        }
        if c > capC {
            capC = c
            kn.deallocate(); kn = .allocate(capacity: c * capD)
            knf.deallocate(); knf = .allocate(capacity: c * capD)
            packed.deallocate(); packed = .allocate(capacity: ck_packed_count(c, capD))
            row.deallocate(); row = .allocate(capacity: c)
            gather.deallocate(); gather = .allocate(capacity: c * capD)
        }
        if e > capE {
            capE = e
            en.deallocate(); en = .allocate(capacity: e * capD)
            enf.deallocate(); enf = .allocate(capacity: e * capD)
            best.deallocate(); best = .allocate(capacity: e)
            second.deallocate(); second = .allocate(capacity: e)
            arg.deallocate(); arg = .allocate(capacity: e)
            rowKeys.deallocate(); rowKeys = .allocate(capacity: e * capD)
            b2.deallocate(); b2 = .allocate(capacity: e)
            s2.deallocate(); s2 = .allocate(capacity: e)
            a2.deallocate(); a2 = .allocate(capacity: e)
        }
    }

    /// Room for `CandidateRanking`'s per-position slots and per-block bits.
    func reserveRanking(P: Int, blocks: Int) {
        if P > capP { capP = P; slotOf.deallocate(); slotOf = .allocate(capacity: P) }
        if blocks > capBlocks { capBlocks = blocks; bits.deallocate(); bits = .allocate(capacity: blocks) }
    }

    deinit {
        kn.deallocate(); en.deallocate(); knf.deallocate(); enf.deallocate(); packed.deallocate()
        row.deallocate(); best.deallocate(); second.deallocate(); arg.deallocate(); src.deallocate()
        gather.deallocate(); rowKeys.deallocate(); b2.deallocate(); s2.deallocate(); a2.deallocate()
        slotOf.deallocate(); bits.deallocate()
    }
}
