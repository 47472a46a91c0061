import Foundation
import KVPolicies
import KVTrace

/// One layer's decision replayed on the evaluation rows: the compressed cache is the decision's
/// kept slots (merged `K'`, `V'` where the policy merges) plus positions `P ..< T` appended
/// unchanged. Holds the per-query-head sums the metrics finish.
public struct ReplayLayer: Sendable {
    public let decision: LayerDecision
    /// True when the policy merges (then `output_error_evict` is undefined).
    public let merges: Bool
    /// Per query head `h`: `Σ_{j∈S_g(h), j≤i} A[h,i,j]` per evaluation row (empty without rows).
    public let keptMass: [[Double]]
    /// Per query head, per modality of `EvaluationContext.modalities`, per row: kept mass of that modality.
    public let keptModalityMass: [[[Double]]]
    /// Per query head, per row: `|top_k ∩ S|`.
    public let topHits: [[Int]]
    /// Per query head: the compressed-cache outputs `o'` `[R·D]` (empty without q, k, v).
    public let outputs: [[Double]]
    /// Per query head: the eviction-only estimate `[R·D]` (empty without rows and v, or when merging).
    public let evictOutputs: [[Double]]

    /// Replays `decision` against `context`.
    public init(_ decision: LayerDecision, merges declared: Bool, context c: EvaluationContext) {
        self.decision = decision
        let merging = declared || decision.mergeCount > 0
        merges = merging
        let H = c.queryHeads, R = c.rowCount, D = c.headDim, T = c.seqLen, P = c.compressionPoint
        let map = c.kvHeadOfQueryHead
        var km = [[Double]](repeating: [], count: H)
        var kmm = [[[Double]]](repeating: [], count: H)
        var hits = [[Int]](repeating: [], count: H)
        var outs = [[Double]](repeating: [], count: H)
        var eouts = [[Double]](repeating: [], count: H)
        // Per KV head: kept mask, merged slot vectors (K', V') for the slots that received contributions.
        let G = decision.heads.count
        var masks = [[Bool]](repeating: [], count: G)
        for g in 0 ..< G {
            var m = [Bool](repeating: false, count: P)
            for p in decision.heads[g].kept where p < P { m[p] = true }
            masks[g] = m
        }
        let modIndex = c.modality.map { m in c.modalities.firstIndex(of: m)! }
        for h in 0 ..< H {
            let g = map[h]
            let head = decision.heads[g]
            let mask = masks[g]
            let ascending = head.kept.sorted()
            if let a = c.attention {
                var mass = [Double](repeating: 0, count: R)
                var mod = [[Double]](repeating: [Double](repeating: 0, count: R), count: c.modalities.count)
                var hit = [Int](repeating: 0, count: R)
                let complement = head.evicted.count < head.kept.count
                for r in 0 ..< R {
                    let i = c.rows.lowerBound + r
                    let base = (h * R + r) * T
                    if complement {
                        var s = 0.0
                        for p in head.evicted where p <= i { s += a[base + p] }
                        mass[r] = c.prefixMass[h * R + r] - s
                    } else {
                        var s = 0.0
                        for p in ascending where p <= i { s += a[base + p] }
                        mass[r] = s
                    }
                    for p in ascending where p <= i { mod[modIndex[p]][r] += a[base + p] }
                    hit[r] = c.topSets[h * R + r].reduce(0) { $0 + (mask[$1] ? 1 : 0) }
                }
                km[h] = mass; kmm[h] = mod; hits[h] = hit
            }
            if let V = c.values, let K = c.keys, let Q = c.queries {
                outs[h] = Self.output(head, g: g, h: h, K: K, V: V, Q: Q, c: c, merged: merging)
            }
            if let a = c.attention, c.evictNote == nil, !merging {
                // Eviction estimate: o' = Σ_{S ∪ [P,i]} A v / Σ_{same} A.
                var o = [Double](repeating: 0, count: R * D)
                let vsrc = c.values
                let vt = vsrc == nil ? nil : vsrc!
                let complement = head.evicted.count < head.kept.count
                o.withUnsafeMutableBufferPointer { ob in
                    c.evictPrefixNum.withUnsafeBufferPointer { pn in c.evictTailNum.withUnsafeBufferPointer { tn in
                        let vv = vt ?? []
                        vv.withUnsafeBufferPointer { vb in
                            for r in 0 ..< R {
                                let acc = ob.baseAddress! + r * D
                                let i = c.rows.lowerBound + r
                                let base = (h * R + r) * T
                                if complement {
                                    acc.update(from: pn.baseAddress! + (h * R + r) * D, count: D)
                                    for p in head.evicted where p <= i { Kernels.axmy(a[base + p], vb.baseAddress! + (g * T + p) * D, acc, D) }
                                } else {
                                    for p in ascending where p <= i { Kernels.axpy(a[base + p], vb.baseAddress! + (g * T + p) * D, acc, D) }
                                }
                                let z = km[h][r] + c.tailMass[h * R + r]
                                for d in 0 ..< D { acc[d] = z > 0 ? (acc[d] + tn[(h * R + r) * D + d]) / z : 0 }
                            }
                        }
                    } }
                }
                eouts[h] = o
            }
        }
        keptMass = km; keptModalityMass = kmm; topHits = hits; outputs = outs; evictOutputs = eouts
    }

    /// `o'` for query head `h` on every evaluation row: softmax over the kept slots (merged keys
    /// re-scored as `s·q·k'`) and positions `P..i`, values `V'` in merged slots.
    static func output(_ head: HeadDecision, g: Int, h: Int, K: [Double], V: [Double], Q: [Double], c: EvaluationContext,
                       merged: Bool) -> [Double] {
        let R = c.rowCount, D = c.headDim, T = c.seqLen
        var o = [Double](repeating: 0, count: R * D)
        var z = [Double](repeating: 0, count: R)
        // Merged slot vectors, by the DecisionApplier formula:
        // K'[κ] = (K[κ] + Σ (a·K[src] + b·K[κ])) / (1 + n), from the pre-merge keys; V' the same.
        var slotK: [Int: [Double]] = [:], slotV: [Int: [Double]] = [:]
        if !head.merges.isEmpty {
            var count: [Int: Int] = [:]
            var accK: [Int: [Double]] = [:], accV: [Int: [Double]] = [:]
            for m in head.merges {
                let pv = head.kept[m.slot]
                var ak = accK[m.slot] ?? [Double](repeating: 0, count: D)
                var av = accV[m.slot] ?? [Double](repeating: 0, count: D)
                for d in 0 ..< D {
                    ak[d] += m.sourceWeight * K[(g * T + m.source) * D + d] + m.pivotWeight * K[(g * T + pv) * D + d]
                    av[d] += m.sourceWeight * V[(g * T + m.source) * D + d] + m.pivotWeight * V[(g * T + pv) * D + d]
                }
                accK[m.slot] = ak; accV[m.slot] = av
                count[m.slot, default: 0] += 1
            }
            for (s, n) in count {
                let pv = head.kept[s], div = Double(1 + n)
                slotK[s] = (0 ..< D).map { (K[(g * T + pv) * D + $0] + accK[s]![$0]) / div }
                slotV[s] = (0 ..< D).map { (V[(g * T + pv) * D + $0] + accV[s]![$0]) / div }
            }
        }
        let complement = slotK.isEmpty && head.evicted.count < head.kept.count
        c.weights.withUnsafeBufferPointer { wb in V.withUnsafeBufferPointer { vb in Q.withUnsafeBufferPointer { qb in
            o.withUnsafeMutableBufferPointer { ob in
                let w0 = wb.baseAddress!, v0 = vb.baseAddress!, o0 = ob.baseAddress!
                if complement {
                    for r in 0 ..< R {
                        let i = c.rows.lowerBound + r
                        let acc = o0 + r * D
                        c.prefixNum.withUnsafeBufferPointer { acc.update(from: $0.baseAddress! + (h * R + r) * D, count: D) }
                        var zz = c.prefixZ[h * R + r]
                        for p in head.evicted where p <= i {
                            let wt = w0[(h * R + r) * T + p]
                            zz -= wt
                            Kernels.axmy(wt, v0 + (g * T + p) * D, acc, D)
                        }
                        z[r] = zz
                    }
                } else {
                    // Kept slots in ascending position order (the full cache then sums exactly as the reference).
                    let order = head.kept.indices.sorted { head.kept[$0] < head.kept[$1] }
                    for s in order {
                        let p = head.kept[s]
                        if let kp = slotK[s], let vp = slotV[s] {
                            vp.withUnsafeBufferPointer { vpb in kp.withUnsafeBufferPointer { kpb in
                                for r in 0 ..< R {
                                    let i = c.rows.lowerBound + r
                                    guard p <= i else { continue }
                                    let l = c.scale * Kernels.dot(qb.baseAddress! + (h * R + r) * D, kpb.baseAddress!, D)
                                    let wt = Foundation.exp(l - c.rowMax[h * R + r])
                                    z[r] += wt
                                    Kernels.axpy(wt, vpb.baseAddress!, o0 + r * D, D)
                                }
                            } }
                        } else {
                            let vp = v0 + (g * T + p) * D
                            for r in 0 ..< R {
                                let wt = w0[(h * R + r) * T + p]
                                if p > c.rows.lowerBound + r { continue }
                                z[r] += wt
                                Kernels.axpy(wt, vp, o0 + r * D, D)
                            }
                        }
                    }
                }
                for r in 0 ..< R {
                    let zt = z[r] + c.tailZ[h * R + r]
                    for d in 0 ..< D { o0[r * D + d] = (o0[r * D + d] + c.tailNum[(h * R + r) * D + d]) / zt }
                }
            }
        } } }
        return o
    }
}
