import CKernels
import Foundation
import KVPolicies
import KVTrace

/// One layer's decision replayed on the evaluation rows: the compressed cache is the decision's
/// kept slots (merged `K'`, `V'` where the policy merges) plus positions `P ..< T` appended
/// unchanged, less the generated positions a decoding replay evicted (`evictedGenerated`).
/// Holds the per-query-head sums the metrics finish.
public struct ReplayLayer: Sendable {
    public private(set) var decision: LayerDecision
    /// Per KV head: generated positions (`≥ P`, ascending) that are no longer in the cache (empty
    /// outside a decoding replay with `--recompress-every` or `--evict-per-step`).
    public let evictedGenerated: [[Int]]
    /// Per query head, per evaluation row: `Σ_{j∈G_i, j∉evictedGenerated} A[h,i,j]`, the attention on
    /// the generated positions still visible (`EvaluationContext.tailMass` when nothing was evicted).
    public let tailMass: [[Double]]
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

    /// This replay for `other`, or nil unless `other` has the same heads (kept, evicted, merges and
    /// assignments per KV head) and merges alike, e.g. `full` at every budget: every sum it holds
    /// depends only on those, so nothing is recomputed; `decision` becomes `other`.
    public func reused(for other: LayerDecision, merges declared: Bool) -> ReplayLayer? {
        guard other.heads == decision.heads, Self.merges(other, declared: declared) == merges else { return nil }
        var r = self
        r.decision = other
        return r
    }

    /// True when a replay of `decision` treats it as merging: declared so, or some head merges.
    static func merges(_ decision: LayerDecision, declared: Bool) -> Bool { declared || decision.mergeCount > 0 }

    /// Replays `decision` against `context`; `evictedGenerated[g]` lists the generated positions KV
    /// head `g` no longer holds (default: none, every position `P ..< T` is visible).
    public init(_ decision: LayerDecision, merges declared: Bool, context c: EvaluationContext, evictedGenerated: [[Int]] = []) {
        self.decision = decision
        let gone = evictedGenerated.isEmpty ? [[Int]](repeating: [], count: decision.heads.count) : evictedGenerated
        self.evictedGenerated = gone
        let merging = Self.merges(decision, declared: declared)
        merges = merging
        let H = c.queryHeads, R = c.rowCount, D = c.headDim, T = c.seqLen, P = c.compressionPoint
        let map = c.kvHeadOfQueryHead
        var km = [[Double]](repeating: [], count: H)
        var kmm = [[[Double]]](repeating: [], count: H)
        var hits = [[Int]](repeating: [], count: H)
        var outs = [[Double]](repeating: [], count: H)
        var eouts = [[Double]](repeating: [], count: H)
        var tails = [[Double]](repeating: [], count: H)
        // Per KV head: kept mask, merged slot vectors (K', V') for the slots that received contributions.
        let G = decision.heads.count
        var masks = [[Bool]](repeating: [], count: G)
        for g in 0 ..< G {
            var m = [Bool](repeating: false, count: P)
            for p in decision.heads[g].kept where p < P { m[p] = true }
            masks[g] = m
        }
        // Per KV head: kept positions ascending, and split by modality (each list still ascending).
        let M = c.modalities.count
        var ascendingOf = [[Int]](repeating: [], count: G)
        var byModalityOf = [[[Int]]](repeating: [], count: G)
        for g in 0 ..< G {
            let kept = decision.heads[g].kept
            let asc = zip(kept, kept.dropFirst()).allSatisfy { $0 < $1 } ? kept : kept.sorted()
            ascendingOf[g] = asc
            var lists = [[Int]](repeating: [], count: M)
            for p in asc where p < P { lists[c.modalityIndex[p]].append(p) }
            byModalityOf[g] = lists
        }
        let first = c.rows.lowerBound
        for h in 0 ..< H {
            let g = map[h]
            let head = decision.heads[g]
            let mask = masks[g]
            let ascending = ascendingOf[g]
            if let a = c.attention {
                // Each sum runs over its positions in ascending order, one row at a time (the
                // gathered-sum kernel keeps each row's order), from 0.
                var mass = [Double](repeating: 0, count: R)
                var mod = [[Double]](repeating: [Double](repeating: 0, count: R), count: M)
                var hit = [Int](repeating: 0, count: R)
                var tail = [Double](repeating: 0, count: R)
                let complement = head.evicted.count < head.kept.count
                a.withUnsafeBufferPointer { ab in
                    let ah = ab.baseAddress! + h * R * T
                    Kernels.gatherSum(
                        firstRow: first, rows: R, weights: ah, ldw: T, positions: complement ? head.evicted : ascending,
                        into: &mass, subtract: false)
                    if complement { for r in 0 ..< R { mass[r] = c.prefixMass[h * R + r] - mass[r] } }
                    for m in 0 ..< M {
                        Kernels.gatherSum(
                            firstRow: first, rows: R, weights: ah, ldw: T, positions: byModalityOf[g][m], into: &mod[m], subtract: false)
                    }
                    Kernels.gatherSum(firstRow: first, rows: R, weights: ah, ldw: T, positions: gone[g], into: &tail, subtract: false)
                    for r in 0 ..< R { tail[r] = c.tailMass[h * R + r] - tail[r] }
                }
                mask.withUnsafeBufferPointer { mk in
                    for r in 0 ..< R {
                        var n = 0
                        for t in c.topSets[h * R + r] where mk[t] { n += 1 }
                        hit[r] = n
                    }
                }
                km[h] = mass; kmm[h] = mod; hits[h] = hit; tails[h] = tail
            }
            if let V = c.valueRows, let K = c.keyRows, let Q = c.queries, c.outputNote == nil {
                outs[h] = Self.output(head, g: g, h: h, K: K, V: V, Q: Q, c: c, merged: merging, evictedGenerated: gone[g])
            }
            if let a = c.attention, let V = c.valueRows, c.evictNote == nil, !merging {
                // Eviction estimate: o' = Σ_{S ∪ [P,i]} A v / Σ_{same} A.
                var o = [Double](repeating: 0, count: R * D)
                let complement = head.evicted.count < head.kept.count
                o.withUnsafeMutableBufferPointer { ob in
                    c.evictPrefixNum.withUnsafeBufferPointer { pn in
                        c.evictTailNum.withUnsafeBufferPointer { tn in
                            a.withUnsafeBufferPointer { ab in
                                let ah = ab.baseAddress! + h * R * T
                                if complement {
                                    ob.baseAddress!.update(from: pn.baseAddress! + h * R * D, count: R * D)
                                    V.accumulateCausal(
                                        head: g, firstRow: c.rows.lowerBound, rows: R, weights: ah, ldw: T,
                                        positions: head.evicted, into: ob.baseAddress!, subtract: true)
                                } else {
                                    V.accumulateCausal(
                                        head: g, firstRow: c.rows.lowerBound, rows: R, weights: ah, ldw: T,
                                        positions: ascending, into: ob.baseAddress!, subtract: false)
                                }
                                V.accumulateCausal(
                                    head: g, firstRow: c.rows.lowerBound, rows: R, weights: ah, ldw: T,
                                    positions: gone[g], into: ob.baseAddress!, subtract: true)
                                for r in 0 ..< R {
                                    let acc = ob.baseAddress! + r * D
                                    let z = km[h][r] + tails[h][r]
                                    for d in 0 ..< D { acc[d] = z > 0 ? (acc[d] + tn[(h * R + r) * D + d]) / z : 0 }
                                }
                            }
                        }
                    }
                }
                eouts[h] = o
            }
        }
        tailMass = tails
        keptMass = km; keptModalityMass = kmm; topHits = hits; outputs = outs; evictOutputs = eouts
    }

    /// `o'` for query head `h` on every evaluation row: softmax over the kept slots (merged keys
    /// re-scored as `s·q·k'`) and positions `P..i` other than `evictedGenerated`, values `V'` in merged slots.
    static func output(
        _ head: HeadDecision, g: Int, h: Int, K: KVRows, V: KVRows, Q: [Double], c: EvaluationContext,
        merged: Bool, evictedGenerated gone: [Int]
    ) -> [Double] {
        let R = c.rowCount, D = c.headDim, T = c.seqLen
        var o = [Double](repeating: 0, count: R * D)
        var z = [Double](repeating: 0, count: R)
        // Merged slot vectors K', V' by the one merge formula (`MergeRows`, shared with DecisionApplier).
        // `row[s]` is slot `s`'s row in `mergedK`/`mergedV`, −1 for a slot without contributions.
        var row = [Int](repeating: -1, count: head.kept.count)
        var mergedK: [Double] = [], mergedV: [Double] = []
        if !head.merges.isEmpty {
            let layout = MergeRows(head)
            row = layout.slotRow
            mergedK = K.withHead(g) { layout.rows($0, elementType: K.vtype, dim: D) }
            mergedV = V.withHead(g) { layout.rows($0, elementType: V.vtype, dim: D) }
        }
        let merged = !head.merges.isEmpty
        let complement = !merged && head.evicted.count < head.kept.count
        let first = c.rows.lowerBound
        // Kept slots in ascending position order (the full cache then sums exactly as the reference).
        let kept = head.kept
        let order =
            complement
            ? [] : zip(kept, kept.dropFirst()).allSatisfy { $0 < $1 } ? Array(kept.indices) : kept.indices.sorted { kept[$0] < kept[$1] }
        c.weights.withUnsafeBufferPointer { wb in
            Q.withUnsafeBufferPointer { qb in
                o.withUnsafeMutableBufferPointer { ob in
                    let w0 = wb.baseAddress!, o0 = ob.baseAddress!
                    let wh = w0 + h * R * T
                    if complement {
                        c.prefixNum.withUnsafeBufferPointer { o0.update(from: $0.baseAddress! + h * R * D, count: R * D) }
                        for r in 0 ..< R { z[r] = c.prefixZ[h * R + r] }
                        Kernels.gatherSum(firstRow: first, rows: R, weights: wh, ldw: T, positions: head.evicted, into: &z, subtract: true)
                        V.accumulateCausal(
                            head: g, firstRow: first, rows: R, weights: wh, ldw: T, positions: head.evicted, into: o0, subtract: true)
                    } else if merged {
                        // Merged slots: one weight row per evaluation row over the slots in ascending
                        // position order (w[i, p] for a plain slot, exp(s·q·k' − m) for a merged one) and
                        // the slots' values (V or V') as Double rows, summed by the accumulation kernel for
                        // o and z: the same products and sums, in the same order, as slot by slot.
                        mergedSlots(
                            head, g: g, order: order, slotRow: row, mergedK: mergedK, mergedV: mergedV, V: V, c: c,
                            q: qb.baseAddress! + h * R * D, rowMax: h * R, weights: wh, into: o0, z: &z)
                    } else {
                        let ascending = order.map { head.kept[$0] }
                        V.accumulateCausal(
                            head: g, firstRow: first, rows: R, weights: wh, ldw: T, positions: ascending, into: o0, subtract: false)
                        Kernels.gatherSum(firstRow: first, rows: R, weights: wh, ldw: T, positions: ascending, into: &z, subtract: false)
                    }
                    if !gone.isEmpty {
                        V.accumulateCausal(
                            head: g, firstRow: first, rows: R, weights: wh, ldw: T, positions: gone, into: o0, subtract: true)
                        Kernels.gatherSum(firstRow: first, rows: R, weights: wh, ldw: T, positions: gone, into: &z, subtract: true)
                    }
                    for r in 0 ..< R {
                        let zt = z[r] + c.tailZ[h * R + r]
                        for d in 0 ..< D { o0[r * D + d] = (o0[r * D + d] + c.tailNum[(h * R + r) * D + d]) / zt }
                    }
                }
            }
        }
        return o
    }
    /// `o'` and `z` of one query head over the kept slots each evaluation row sees (see `output`):
    /// the logits of the merged slots `s·q·k'` by `ck_dot_rows` (the order of `dot`), their weights
    /// `exp(l − m)`, the plain slots' `w[i, p]`, then one accumulation over the slots' values.
    static func mergedSlots(
        _ head: HeadDecision, g: Int, order: [Int], slotRow row: [Int], mergedK: [Double], mergedV: [Double], V: KVRows,
        c: EvaluationContext, q: UnsafePointer<Double>, rowMax mx: Int, weights wh: UnsafePointer<Double>,
        into o: UnsafeMutablePointer<Double>, z: inout [Double]
    ) {
        let R = c.rowCount, D = c.headDim, T = c.seqLen, n = order.count
        let nm = mergedK.count / D
        // Every element of these is written below before it is read.
        var logits = [Double](unsafeUninitializedCapacity: R * nm) { _, k in k = R * nm }
        var weights = [Double](unsafeUninitializedCapacity: R * n) { _, k in k = R * n }
        var values = [Double](unsafeUninitializedCapacity: n * D) { _, k in k = n * D }
        // Logits of every merged row (rows in `mergedK` order; `row[s]` picks slot `s`'s).
        mergedK.withUnsafeBufferPointer { kb in
            logits.withUnsafeMutableBufferPointer { lb in ck_dot_rows(R, nm, D, q, D, kb.baseAddress!, D, lb.baseAddress!, nm) }
        }
        mergedV.withUnsafeBufferPointer { mv in
            values.withUnsafeMutableBufferPointer { xb in
                weights.withUnsafeMutableBufferPointer { wb in
                    for (j, s) in order.enumerated() {
                        let p = head.kept[s]
                        if row[s] >= 0 {
                            (xb.baseAddress! + j * D).update(from: mv.baseAddress! + row[s] * D, count: D)
                            for r in 0 ..< R { wb[r * n + j] = Foundation.exp(c.scale * logits[r * nm + row[s]] - c.rowMax[mx + r]) }
                        } else {
                            V.load(g, p, into: xb.baseAddress! + j * D)
                            for r in 0 ..< R { wb[r * n + j] = wh[r * T + p] }
                        }
                    }
                }
            }
        }
        // Row i sums the slots at positions ≤ i (a prefix of the ascending order): all rows at once
        // where they see the same slots, row by row past the first evaluation row.
        weights.withUnsafeBufferPointer { wb in
            values.withUnsafeBufferPointer { xb in
                z.withUnsafeMutableBufferPointer { zb in
                    Kernels.causal(columns: Array(0 ..< n), positions: order.map { head.kept[$0] }, firstRow: c.rows.lowerBound, rows: R) {
                        r, m, cols in
                        ck_accum_rows(m, D, wb.baseAddress! + r * n, n, cols.baseAddress!, cols.count, xb.baseAddress!, Int32(CK_F64), o + r * D, 0)
                        ck_gather_sum(m, wb.baseAddress! + r * n, n, cols.baseAddress!, cols.count, zb.baseAddress! + r, 0)
                    }
                }
            }
        }
    }
}
