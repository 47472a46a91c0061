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
        try checkTensors(context: ctx)
        let kt = ctx.tensors.keys!, vt = ctx.tensors.values!
        let G = ctx.kvHeads, D = ctx.headDim
        precondition(G == decision.heads.count, "decision and K/V head counts differ")
        let heads = try parallelMap(G) { g -> CompressedHead in
            let h = decision.heads[g], C = h.kept.count
            func merged(_ t: Tensor) -> [Double] {
                [Double](unsafeUninitializedCapacity: C * D) { ob, n in
                    ctx.compressedRows(h, head: g, of: t, into: ob.baseAddress!)
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

    /// The compressed keys (`values: false`) or values of `decision`, each `Double` of `apply`
    /// rounded once to `Float`, written head by head into `out` as `[heads.count][C][D]` with `C`
    /// slots a head, for the KV heads `heads` (default: all; a head with fewer kept slots leaves its
    /// last rows as they are). Reads each head's kept and source rows straight from the context's
    /// tensor; heads run in parallel. The same numbers as `apply(decision, context:)` rounded to
    /// `Float`, without its per-head `Double` arrays.
    public static func applyRounded(
        _ decision: LayerDecision, context ctx: LayerContext, values: Bool, heads: Range<Int>? = nil, slots C: Int,
        into out: UnsafeMutablePointer<Float>
    ) throws {
        try checkTensors(context: ctx)
        let t = values ? ctx.tensors.values! : ctx.tensors.keys!
        let G = ctx.kvHeads, D = ctx.headDim
        precondition(G == decision.heads.count, "decision and K/V head counts differ")
        let heads = heads ?? 0 ..< G
        precondition(heads.lowerBound >= 0 && heads.upperBound <= G, "heads \(heads) outside 0 ..< \(G)")
        precondition(decision.heads[heads].allSatisfy { $0.kept.count <= C }, "a head keeps more than \(C) slots")
        let dst = UnsafeSendableBox(out)
        _ = parallelMap(heads.count, scratch: { RowBuffer(C * D) }) { buffer, j -> Bool in
            let g = heads.lowerBound + j, h = decision.heads[g]
            ctx.compressedRows(h, head: g, of: t, into: buffer.pointer)
            let o = dst.value + j * C * D, b = buffer.pointer
            for i in 0 ..< h.kept.count * D { o[i] = Float(b[i]) }
            return true
        }
    }
}

extension KVBlock {
    /// One head's merged rows, from its `[P][D]` rows at `x0`: the kept rows gathered, then the
    /// merged slots' rows of `MergeRows` in their slots.
    static func merged(_ h: HeadDecision, _ x0: UnsafePointer<Double>, _ D: Int) -> [Double] {
        [Double](unsafeUninitializedCapacity: h.kept.count * D) { ob, n in
            MergeRows(h).compressed(UnsafeRawPointer(x0), elementType: Int32(CK_F64), dim: D, into: ob.baseAddress!) { p, o in
                o.update(from: x0 + p * D, count: D)
            }
            n = h.kept.count * D
        }
    }
}

extension Tensor {
    /// The element type the C kernels read in place (`CK_F16`, `CK_F32`, `CK_F64`: little-endian
    /// f16, f32, f64), or nil for a dtype or byte order they do not read.
    public var kernelElementType: Int32? {
        switch (dtype, byteSwapped) {
        case (.f16, false): Int32(CK_F16)
        case (.f32, false): Int32(CK_F32)
        case (.f64, false): Int32(CK_F64)
        default: nil
        }
    }
}

extension LayerContext {
    /// Head `g`'s compressed rows (`C·D`, slot order) of `t` (`[KVH][T][D]`) into `o`: read in place
    /// when the kernels read `t`'s element type, else from a `Double` copy of the head's rows.
    func compressedRows(_ h: HeadDecision, head g: Int, of t: Tensor, into o: UnsafeMutablePointer<Double>) {
        let T = info.shape.seqLen, D = headDim
        precondition(t.count >= (g + 1) * T * D, "tensor smaller than [KVH][T][D]")
        let layout = MergeRows(h)
        if let type = t.kernelElementType {
            layout.compressed(t.storage.base + t.offset + g * T * D * t.dtype.width, elementType: type, dim: D, into: o) { p, out in
                t.copyDoubles(from: (g * T + p) * D, count: D, into: out)
            }
            return
        }
        let rows = [Double](unsafeUninitializedCapacity: T * D) { b, n in
            t.copyDoubles(from: g * T * D, count: T * D, into: b.baseAddress!)
            n = T * D
        }
        rows.withUnsafeBufferPointer { rb in
            layout.compressed(UnsafeRawPointer(rb.baseAddress!), elementType: Int32(CK_F64), dim: D, into: o) { p, out in
                out.update(from: rb.baseAddress! + p * D, count: D)
            }
        }
    }
}

/// One head's merge contributions laid out for `ck_merge_rows_grouped` — the one place the merge formula
/// is computed: per slot `k` with contributions `S_k`,
/// `x'[κ_k] = (x[κ_k] + Σ_{m∈S_k} (a_m·x[source_m] + b_m·x[κ_k])) / (1 + |S_k|)`, all from the
/// pre-merge rows, in `Double`, each product rounded, then their sum, then the addition. Built once
/// per head, then applied to its keys and its values.
public struct MergeRows: Sendable {
    /// `slotRow[s]`: the row of slot `s` in `rows(_:elementType:dim:)`, −1 for a slot without
    /// contributions; rows are in order of each slot's first contribution.
    public let slotRow: [Int]
    /// The head's kept positions, by slot.
    let kept: [Int]
    /// Per row: the pivot's position and how many contributions it receives.
    let pivots: [Int], counts: [Int]
    /// Per contribution, grouped by row (each row's in `merges` order): source position, row, source
    /// and pivot weights; row `r`'s are `starts[r] ..< starts[r + 1]`.
    let sources: [Int], rowOf: [Int], sourceWeights: [Double], pivotWeights: [Double], starts: [Int]

    public init(_ h: HeadDecision) {
        var slotRow = [Int](repeating: -1, count: h.kept.count)
        var pivots: [Int] = [], counts: [Int] = [], rowOf: [Int] = []
        rowOf.reserveCapacity(h.merges.count)
        for m in h.merges {
            if slotRow[m.slot] < 0 {
                slotRow[m.slot] = pivots.count
                pivots.append(h.kept[m.slot])
                counts.append(0)
            }
            counts[slotRow[m.slot]] += 1
            rowOf.append(slotRow[m.slot])
        }
        self.slotRow = slotRow
        kept = h.kept
        self.pivots = pivots
        self.counts = counts
        // A stable counting sort of the contributions by row.
        var starts = [Int](repeating: 0, count: pivots.count + 1)
        for r in 0 ..< pivots.count { starts[r + 1] = starts[r] + counts[r] }
        var next = starts
        var order = [Int](repeating: 0, count: rowOf.count)
        for (k, r) in rowOf.enumerated() {
            order[next[r]] = k
            next[r] += 1
        }
        self.starts = starts
        self.rowOf = order.map { rowOf[$0] }
        sources = order.map { h.merges[$0].source }
        sourceWeights = order.map { h.merges[$0].sourceWeight }
        pivotWeights = order.map { h.merges[$0].pivotWeight }
    }

    /// The merged rows (`pivots.count · D`) from the head's rows `x` `[T][D]` (position `p` at
    /// `p·D`) of element type `elementType` (`CK_F64`, `CK_F32` or `CK_F16`, read in place).
    public func rows(_ x: UnsafeRawPointer, elementType: Int32, dim D: Int) -> [Double] {
        let nr = pivots.count
        return [Double](unsafeUninitializedCapacity: nr * D) { out, filled in
            if nr > 0 {
                ck_merge_rows_grouped(
                    D, sources.count, sources, rowOf, sourceWeights, pivotWeights, x, elementType, nr, starts, pivots, counts,
                    out.baseAddress!)
            }
            filled = nr * D
        }
    }

    /// The head's compressed rows (`C·D`, slot order) into `o`: each plain slot's row as
    /// `load(p, out)` writes it, each merged slot's from `rows(x, elementType:dim:)`.
    public func compressed(
        _ x: UnsafeRawPointer, elementType: Int32, dim D: Int, into o: UnsafeMutablePointer<Double>,
        load: (Int, UnsafeMutablePointer<Double>) -> Void
    ) {
        let merged = rows(x, elementType: elementType, dim: D)
        merged.withUnsafeBufferPointer { mb in
            for (s, r) in slotRow.enumerated() {
                if r < 0 { load(kept[s], o + s * D) } else { (o + s * D).update(from: mb.baseAddress! + r * D, count: D) }
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
