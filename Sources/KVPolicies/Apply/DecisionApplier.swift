import CKernels
import KVTrace
/// One KV head of a compressed cache.
public struct CompressedHead: Sendable, Equatable {
    /// Original positions, in cache order.
    public var kept: [Int]
    /// `[C][D]` keys and values (merged where the policy merges).
    public var keys: [Double]
    public var values: [Double]
    /// For each evicted position (ascending), the slot it merged into, or −1 if dropped.
    public var mergeTarget: [Int]
}

/// The compressed cache of one layer.
public struct CompressedLayer: Sendable, Equatable {
    public var layer: Int
    public var dim: Int
    public var heads: [CompressedHead]
}

/// Turns decisions into compressed keys and values: a gather of the kept rows, then, per slot
/// `k` with contributions `S_k`, `K'[κ_k] = (K[κ_k] + Σ_{x∈S_k} (a·K[source] + b·K[κ_k])) / (1 + |S_k|)`,
/// all from the pre-merge keys (docs/policies.md#the-merge-wrapper). Values the same way. Computed in `Double`.
public enum DecisionApplier {
    public static func apply(_ decision: LayerDecision, keys: KVBlock, values: KVBlock) -> CompressedLayer {
        precondition(keys.heads == decision.heads.count && values.heads == keys.heads, "decision and K/V head counts differ")
        let D = keys.dim
        let heads =
            (try? parallelMap(decision.heads.count) { g -> CompressedHead in
                let h = decision.heads[g]
                return CompressedHead(
                    kept: h.kept, keys: merged(h, keys, g, D), values: merged(h, values, g, D), mergeTarget: h.mergeTarget)
            }) ?? []
        return CompressedLayer(layer: decision.layer, dim: D, heads: heads)
    }

    /// The same, reading each head's keys and values from the context's tensors one head at a
    /// time (no `[KVH][P][D]` copies of the whole layer). Equal to
    /// `apply(decision, keys: context.keys(), values: context.values())`.
    public static func apply(_ decision: LayerDecision, context ctx: LayerContext) throws -> CompressedLayer {
        guard let kt = ctx.tensors.keys else { throw ctx.missing("k", "cached keys") }
        guard let vt = ctx.tensors.values else { throw ctx.missing("v", "cached values") }
        let G = ctx.kvHeads, P = ctx.compressionPoint, D = ctx.headDim
        precondition(G == decision.heads.count, "decision and K/V head counts differ")
        let heads = parallelMap(G, scratch: { RowBuffer(P * D) }) { buffer, g -> CompressedHead in
            let h = decision.heads[g], rows = buffer.pointer
            ctx.copyHeadRows(kt, head: g, into: rows)
            let k = KVBlock.merged(h, UnsafePointer(rows), D)
            ctx.copyHeadRows(vt, head: g, into: rows)
            let v = KVBlock.merged(h, UnsafePointer(rows), D)
            return CompressedHead(kept: h.kept, keys: k, values: v, mergeTarget: h.mergeTarget)
        }
        return CompressedLayer(layer: decision.layer, dim: D, heads: heads)
    }

    static func merged(_ h: HeadDecision, _ x: KVBlock, _ g: Int, _ D: Int) -> [Double] {
        x.values.withUnsafeBufferPointer { KVBlock.merged(h, $0.baseAddress! + x.offset(g, 0), D) }
    }
}

extension KVBlock {
    /// One head's merged rows, from its `[P][D]` rows at `x0`: the kept rows gathered, then the
    /// merged slots' rows of `HeadDecision.mergedRows` in their slots.
    static func merged(_ h: HeadDecision, _ x0: UnsafePointer<Double>, _ D: Int) -> [Double] {
        let C = h.kept.count
        let (slotRow, rows) = h.mergedRows(UnsafeRawPointer(x0), elementType: Int32(CK_F64), dim: D)
        return [Double](unsafeUninitializedCapacity: C * D) { ob, n in
            let o0 = ob.baseAddress!
            rows.withUnsafeBufferPointer { rb in
                for (s, p) in h.kept.enumerated() {
                    (o0 + s * D).update(from: slotRow[s] < 0 ? x0 + p * D : rb.baseAddress! + slotRow[s] * D, count: D)
                }
            }
            n = C * D
        }
    }
}

extension HeadDecision {
    /// The merged keys (or values) of this head's slots that receive contributions — the one place
    /// the merge formula is computed (`ck_merge_rows`): per slot `k` with contributions `S_k`,
    /// `x'[κ_k] = (x[κ_k] + Σ_{m∈S_k} (a_m·x[source_m] + b_m·x[κ_k])) / (1 + |S_k|)`, all from the
    /// pre-merge rows, in `Double`, each product rounded, then their sum, then the addition.
    ///
    /// `x` holds the head's rows `[T][D]` (position `p` at `p·D`) of element type `elementType`
    /// (`CK_F64`, `CK_F32` or `CK_F16`, read in place). Returns `slotRow[s]`, the row of slot `s` in
    /// `rows` (−1 for a slot without contributions), rows in order of each slot's first contribution.
    public func mergedRows(_ x: UnsafeRawPointer, elementType: Int32, dim D: Int) -> (slotRow: [Int], rows: [Double]) {
        var slotRow = [Int](repeating: -1, count: kept.count)
        guard !merges.isEmpty else { return (slotRow, []) }
        var pivots: [Int] = []
        var count: [Int] = []
        let n = merges.count
        var src = [Int](repeating: 0, count: n), row = src
        var a = [Double](repeating: 0, count: n), b = a
        for (k, m) in merges.enumerated() {
            if slotRow[m.slot] < 0 {
                slotRow[m.slot] = pivots.count
                pivots.append(kept[m.slot])
                count.append(0)
            }
            let r = slotRow[m.slot]
            count[r] += 1
            src[k] = m.source; row[k] = r; a[k] = m.sourceWeight; b[k] = m.pivotWeight
        }
        let nr = pivots.count
        let rows = [Double](unsafeUninitializedCapacity: nr * D) { out, filled in
            ck_merge_rows(D, n, src, row, a, b, x, elementType, nr, pivots, count, out.baseAddress!)
            filled = nr * D
        }
        return (slotRow, rows)
    }
}

/// One head's `[P][D]` rows, reused by a worker thread.
final class RowBuffer {
    let pointer: UnsafeMutablePointer<Double>
    init(_ n: Int) { pointer = .allocate(capacity: Swift.max(n, 1)) }
    deinit { pointer.deallocate() }
}
