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
    /// One head's merged rows, from its `[P][D]` rows at `x0`.
    static func merged(_ h: HeadDecision, _ x0: UnsafePointer<Double>, _ D: Int) -> [Double] {
        let C = h.kept.count
        return [Double](unsafeUninitializedCapacity: C * D) { ob, n in
            let o0 = ob.baseAddress!
            for (s, p) in h.kept.enumerated() { (o0 + s * D).update(from: x0 + p * D, count: D) }
            n = C * D
            if h.merges.isEmpty { return }
            var count = [Int](repeating: 0, count: C)
            let a0 = UnsafeMutablePointer<Double>.allocate(capacity: C * D)
            defer { a0.deallocate() }
            a0.initialize(repeating: 0, count: C * D)
            for m in h.merges {
                let src = x0 + m.source * D
                let piv = x0 + h.kept[m.slot] * D
                let a = a0 + m.slot * D
                let ws = m.sourceWeight, wp = m.pivotWeight
                for d in 0 ..< D { a[d] += ws * src[d] + wp * piv[d] }
                count[m.slot] += 1
            }
            for s in 0 ..< C where count[s] > 0 {
                let n = Double(1 + count[s])
                let o = o0 + s * D, a = a0 + s * D
                for d in 0 ..< D { o[d] = (o[d] + a[d]) / n }
            }
        }
    }
}

/// One head's `[P][D]` rows, reused by a worker thread.
final class RowBuffer {
    let pointer: UnsafeMutablePointer<Double>
    init(_ n: Int) { pointer = .allocate(capacity: Swift.max(n, 1)) }
    deinit { pointer.deallocate() }
}
