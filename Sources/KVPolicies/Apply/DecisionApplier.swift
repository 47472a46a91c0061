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
        try checkTensors(context: ctx)
        let kt = ctx.tensors.keys!, vt = ctx.tensors.values!
        let G = ctx.kvHeads, P = ctx.compressionPoint, D = ctx.headDim
        precondition(G == decision.heads.count, "decision and K/V head counts differ")
        let T = ctx.info.shape.seqLen
        precondition(P <= T, "compression point past the sequence")
        let heads = parallelMap(G, scratch: { MergeRows(D) }) { rows, g -> CompressedHead in
            let h = decision.heads[g], C = h.kept.count
            func merged(_ t: Tensor) -> [Double] {
                [Double](unsafeUninitializedCapacity: C * D) { ob, n in
                    rows.merge(h, D, into: ob.baseAddress!) { p, o in LayerContext.copyDoubles(t, from: (g * T + p) * D, count: D, into: o) }
                    n = C * D
                }
            }
            return CompressedHead(kept: h.kept, keys: merged(kt), values: merged(vt), mergeTarget: h.mergeTarget)
        }
        return CompressedLayer(layer: decision.layer, dim: D, heads: heads)
    }

    /// Throws the error naming `k` or `v` when the context's layer lacks the keys or values a
    /// compressed cache is built from.
    public static func checkTensors(context ctx: LayerContext) throws {
        guard ctx.tensors.keys != nil else { throw ctx.missing("k", "cached keys") }
        guard ctx.tensors.values != nil else { throw ctx.missing("v", "cached values") }
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
            let scratch = MergeRows(D)
            scratch.merge(h, D, into: ob.baseAddress!) { p, out in out.update(from: x0 + p * D, count: D) }
            n = C * D
        }
    }
}

/// The working rows of one head's merge (`C·D` sums and one source row), reused by a worker thread.
final class MergeRows {
    private var sums: UnsafeMutablePointer<Double>
    private var capacity: Int
    private let source: UnsafeMutablePointer<Double>
    init(_ D: Int) {
        capacity = 1
        sums = .allocate(capacity: 1)
        source = .allocate(capacity: Swift.max(D, 1))
    }
    deinit { sums.deallocate(); source.deallocate() }

    /// Writes head `h`'s merged rows (`C·D`) to `o0`: the kept rows in slot order, then for each
    /// slot `k` with contributions `S_k`, `(K[κ_k] + Σ_{x∈S_k} (a·K[source] + b·K[κ_k])) / (1 + |S_k|)`,
    /// summed in the order of `h.merges`, each term from the pre-merge rows. `load(p, out)` writes
    /// the `D` values of position `p` (only the kept and source positions are loaded).
    func merge(_ h: HeadDecision, _ D: Int, into o0: UnsafeMutablePointer<Double>, load: (Int, UnsafeMutablePointer<Double>) -> Void) {
        let C = h.kept.count
        for (s, p) in h.kept.enumerated() { load(p, o0 + s * D) }
        if h.merges.isEmpty { return }
        if C * D > capacity {
            sums.deallocate()
            capacity = C * D
            sums = .allocate(capacity: capacity)
        }
        let a0 = sums
        a0.update(repeating: 0, count: C * D)
        var count = [Int](repeating: 0, count: C)
        let src = source
        for m in h.merges {
            load(m.source, src)
            // The slot's row in `o0` is still its pre-merge kept row: rows change only below.
            let piv = o0 + m.slot * D
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

extension DecisionApplier {
    /// The compressed keys (`values: false`) or values of `decision`, each `Double` of `apply`
    /// rounded once to `Float`, written head by head into `out` as `[KVH][C][D]` with `C` slots a
    /// head (a head with fewer kept slots leaves its last rows as they are). Reads each head's kept
    /// and source rows straight from the context's tensor; heads run in parallel. The same numbers
    /// as `apply(decision, context:)` rounded to `Float`, without its per-head `Double` arrays.
    public static func applyRounded(
        _ decision: LayerDecision, context ctx: LayerContext, values: Bool, slots C: Int, into out: UnsafeMutablePointer<Float>
    ) throws {
        try checkTensors(context: ctx)
        let t = values ? ctx.tensors.values! : ctx.tensors.keys!
        let G = ctx.kvHeads, D = ctx.headDim, T = ctx.info.shape.seqLen
        precondition(G == decision.heads.count, "decision and K/V head counts differ")
        precondition(decision.heads.allSatisfy { $0.kept.count <= C }, "a head keeps more than \(C) slots")
        let dst = UnsafeSendableBox(out)
        _ = parallelMap(G, scratch: { (MergeRows(D), RowBuffer(C * D)) }) { scratch, g -> Bool in
            let (rows, buffer) = scratch
            let h = decision.heads[g]
            rows.merge(h, D, into: buffer.pointer) { p, o in LayerContext.copyDoubles(t, from: (g * T + p) * D, count: D, into: o) }
            let o = dst.value + g * C * D, b = buffer.pointer
            for i in 0 ..< h.kept.count * D { o[i] = Float(b[i]) }
            return true
        }
    }
}

/// One head's `[P][D]` rows, reused by a worker thread.
final class RowBuffer {
    let pointer: UnsafeMutablePointer<Double>
    init(_ n: Int) { pointer = .allocate(capacity: Swift.max(n, 1)) }
    deinit { pointer.deallocate() }
}
