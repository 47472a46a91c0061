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
/// all from the pre-merge keys (POLICIES.md §4.6). Values the same way. Computed in `Double`.
public enum DecisionApplier {
    public static func apply(_ decision: LayerDecision, keys: KVBlock, values: KVBlock) -> CompressedLayer {
        precondition(keys.heads == decision.heads.count && values.heads == keys.heads, "decision and K/V head counts differ")
        let D = keys.dim
        let heads = (try? parallelMap(decision.heads.count) { g -> CompressedHead in
            let h = decision.heads[g]
            return CompressedHead(kept: h.kept, keys: merged(h, keys, g, D), values: merged(h, values, g, D), mergeTarget: h.mergeTarget)
        }) ?? []
        return CompressedLayer(layer: decision.layer, dim: D, heads: heads)
    }

    static func merged(_ h: HeadDecision, _ x: KVBlock, _ g: Int, _ D: Int) -> [Double] {
        let C = h.kept.count
        var out = [Double](repeating: 0, count: C * D)
        x.values.withUnsafeBufferPointer { xb in
            out.withUnsafeMutableBufferPointer { ob in
                for (s, p) in h.kept.enumerated() {
                    (ob.baseAddress! + s * D).update(from: xb.baseAddress! + x.offset(g, p), count: D)
                }
                if h.merges.isEmpty { return }
                var count = [Int](repeating: 0, count: C)
                var acc = [Double](repeating: 0, count: C * D)
                acc.withUnsafeMutableBufferPointer { ab in
                    let a0 = ab.baseAddress!, x0 = xb.baseAddress!, o0 = ob.baseAddress!
                    for m in h.merges {
                        let src = x0 + x.offset(g, m.source)
                        let piv = x0 + x.offset(g, h.kept[m.slot])
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
        return out
    }
}
