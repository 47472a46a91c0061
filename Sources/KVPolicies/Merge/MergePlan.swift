import CKernels
import Foundation
import KVTrace

/// Every kept set whose evicted tokens some run of a layer will merge, per KV head: what the
/// engine learns before it runs a grid of settings on the layer, so that each head's merge
/// search is done once for all of them (`MergeBatch`).
///
/// Filled from `CachePolicy.plannedMerge` of each run and stored in the layer's work cache
/// (`MergePlan.register`); `Merging` reads it. Only searches over the whole kept set (merge scope
/// `all`) are planned.
public final class MergePlan: Sendable {
    /// Per KV head, the distinct planned kept sets (each with at least one evicted position), in
    /// the order first planned; empty for a head whose sets are better searched one by one.
    public let keptSets: [[[Int]]]

    init(keptSets: [[[Int]]]) { self.keptSets = keptSets }

    /// Asks every policy for its planned merges under its context and stores the plan in the
    /// layer's work cache (the contexts share one; nothing is stored without a cache, or when no
    /// head has two kept sets). Planning runs each merging policy's base selection once more; the
    /// merge results are exactly those without a plan.
    public static func register(_ runs: [(policy: any CachePolicy, context: LayerContext)]) {
        guard let first = runs.first?.context, first.cache != nil else { return }
        var sets: [[[Int]]] = []
        var seen: [Set<[Int]>] = []
        for (policy, ctx) in runs {
            guard let heads = policy.plannedMerge(ctx) else { continue }
            if sets.count < heads.count {
                sets += Array(repeating: [], count: heads.count - sets.count)
                seen += Array(repeating: [], count: heads.count - seen.count)
            }
            for (g, kept) in heads.enumerated() where !kept.isEmpty && kept.count < ctx.compressionPoint {
                if seen[g].insert(kept).inserted { sets[g].append(kept) }
            }
        }
        // A head whose batched search would cost more than its sets' own searches is left out.
        let P = first.compressionPoint
        sets = sets.map { MergeBatch.worthwhile($0, positions: P) ? $0 : [] }
        guard sets.contains(where: { !$0.isEmpty }) else { return }
        let plan = MergePlan(keptSets: sets)
        _ = first.shared(MergePlanKey()) { Optional(plan) }
    }

    /// The plan of the context's layer, if the engine registered one.
    static func of(_ ctx: LayerContext) -> MergePlan? {
        guard ctx.cache != nil else { return nil }
        return ctx.shared(MergePlanKey()) { MergePlan?.none }
    }
}

struct MergePlanKey: Hashable {}

/// Work-cache key of one KV head's batched assignments.
struct MergeBatchKey: Hashable {
    var head: Int
}

/// The nearest-kept-key assignment of many kept sets of one KV head at once, equal to
/// `MergeAssigner.assign` run on each set.
///
/// Keys are normalised once. The `Float` cosines of every position evicted by some set with
/// every position kept by some set are computed once, a block of rows at a time (CKernels'
/// `ck_dot_block`); for each row and set the `Float` best and second over the set's kept
/// positions are then read from that block, visiting 64-column groups in decreasing order of
/// their maximum and stopping when no group can beat the second. As in `MergeAssigner`, a row is
/// settled when its best beats its second by more than the settle margin (on AMX tiles the block
/// is `ck_dot_block_tiles`' bf16 products and the margin widens by twice their error bound),
/// otherwise every slot within that margin of the best is scored in `Double`; so targets and
/// cosines are the `Double` ones,
/// the same as each set's own search.
enum MergeBatch {
    typealias Assignment = (target: [Int], cosine: [Double])

    /// The rows and columns of the batched search, ascending: the positions some set evicts and
    /// the positions some set keeps.
    static func unions(_ sets: [[Int]], positions P: Int) -> (rows: [Int], columns: [Int]) {
        var keptBy = [Int](repeating: 0, count: P)
        for s in sets { for p in s { keptBy[p] += 1 } }
        return ((0 ..< P).filter { keptBy[$0] < sets.count }, (0 ..< P).filter { keptBy[$0] > 0 })
    }

    /// When one pass over `|rows| × |columns|` costs less than the sets' own searches `Σ E·C`.
    static func worthwhile(_ sets: [[Int]], positions P: Int) -> Bool {
        guard sets.count > 1 else { return false }
        let (rows, columns) = unions(sets, positions: P)
        return rows.count * columns.count < sets.reduce(0) { $0 + $1.count * (P - $1.count) }
    }

    /// The assignments of every set in `sets` (kept positions of `0 ..< P` in slot order; the
    /// evicted ones are the rest, ascending), or nil when some key is not finite (the callers'
    /// own search handles that case).
    static func assign(
        sets: [[Int]], positions P: Int, dim D: Int, scratch m: BatchScratch, load: (Int, UnsafeMutablePointer<Double>) -> Void
    ) -> [[Int]: Assignment]? {
        m.reserve(P: P, D: D, sets: sets.count)
        guard MergeAssigner.normalize(0 ..< P, dim: D, into: m.kn.base, m.kf.base, scratch: m.src.base, load: load) else { return nil }
        let S = sets.count, kn = m.kn.base, columnOf = m.columnOf.base
        // Columns: positions kept by some set; rows: positions evicted by some set.
        let slot = m.slot.base  // [S][P]: slot of p in set s, or −1
        slot.update(repeating: -1, count: S * P)
        for (s, kept) in sets.enumerated() {
            for (k, p) in kept.enumerated() { slot[s * P + p] = Int32(k) }
        }
        let (rows, columns) = unions(sets, positions: P)
        let U = columns.count, W = 64, groups = (U + W - 1) / W
        let ld = (U + Int(CK_PANEL) - 1) / Int(CK_PANEL) * Int(CK_PANEL)
        for (u, p) in columns.enumerated() {
            columnOf[p] = Int32(u)
            (m.gather.base + u * D).update(from: m.kf.base + p * D, count: D)
        }
        ck_pack_panels(m.gather.base, U, D, m.packed.base)
        // On AMX tiles the block's cosines are bf16 products within `ck_top2_error(D)` of the exact
        // ones: the settle margin and the re-scoring window widen by twice that, as in `MergeAssigner`.
        let tiles = ck_uses_amx() != 0
        if tiles {
            m.tiles.reserve(ck_tiles_count(U, D))
            ck_pack_tiles(m.packed.base, U, D, m.tiles.base)
        }
        let settle = MergeAssigner.settleMargin(D)
        // Kept bits of each set per 64-column group.
        let bits = m.bits.base
        bits.update(repeating: 0, count: S * groups)
        for (u, p) in columns.enumerated() {
            for s in 0 ..< S where slot[s * P + p] >= 0 { bits[s * groups + u / W] |= 1 << UInt64(u % W) }
        }
        // Set s's assignments at offset[s] ..< offset[s] + (P − C_s) of the flat outputs.
        var offset = [Int](repeating: 0, count: S + 1)
        for s in 0 ..< S { offset[s + 1] = offset[s] + P - sets[s].count }
        var targets = [Int](repeating: 0, count: offset[S]), cosines = [Double](repeating: 0, count: offset[S])
        var next = Array(offset.dropLast())
        let block = BatchScratch.rowBlock
        let out = m.out.base, gmax = m.groupMax.base
        // Groups by decreasing maximum: (order-preserving bits of the maximum, complemented) << 32 | group.
        var order = [UInt64](repeating: 0, count: groups)
        var r0 = 0
        while r0 < rows.count {
            let n = Swift.min(block, rows.count - r0)
            for r in 0 ..< n { (m.rowKeys.base + r * D).update(from: m.kf.base + rows[r0 + r] * D, count: D) }
            ck_dot_block_tiles(m.rowKeys.base, n, D, m.packed.base, tiles ? m.tiles.base : nil, U, out, ld)
            for r in 0 ..< n {
                let p = rows[r0 + r], row = out + r * ld
                ck_group_max(row, U, W, gmax)
                for b in 0 ..< groups {
                    let x = gmax[b].bitPattern
                    let ordered = x & 0x8000_0000 != 0 ? ~x : x | 0x8000_0000
                    order[b] = UInt64(~ordered) << 32 | UInt64(b)
                }
                order.sort()
                var lastColumn = -1, lastCosine = 0.0
                /// The `Double` cosine of `p` with column `u` (the last one is remembered: sets often agree).
                func cosine(_ u: Int) -> Double {
                    if u != lastColumn { lastColumn = u; lastCosine = dot(kn + p * D, kn + columns[u] * D, D) }
                    return lastCosine
                }
                for s in 0 ..< S where slot[s * P + p] < 0 {
                    let e = next[s]
                    next[s] += 1
                    var best = -Float.infinity, second = -Float.infinity, arg = -1
                    for o in order {
                        let b = Int(o & 0xFFFF_FFFF)
                        if gmax[b] <= second { break }
                        var w = bits[s * groups + b]
                        while w != 0 {
                            let u = b * W + w.trailingZeroBitCount
                            w &= w - 1
                            let v = row[u]
                            if v > best {
                                second = best
                                best = v
                                arg = u
                            } else if v > second {
                                second = v
                            }
                        }
                    }
                    if best - second > settle {
                        targets[e] = Int(slot[s * P + columns[arg]])
                        cosines[e] = cosine(arg)
                    } else {
                        // Every slot within the margin of the best, in slot order (lowest slot on ties).
                        var top = -Double.infinity, at = 0
                        for (k, q) in sets[s].enumerated() {
                            let u = columnOf[q]
                            guard row[Int(u)] >= best - settle else { continue }
                            let c = dot(kn + p * D, kn + q * D, D)
                            if c > top { top = c; at = k }
                        }
                        targets[e] = at
                        cosines[e] = top
                    }
                }
            }
            r0 += n
        }
        var result: [[Int]: Assignment] = [:]
        for s in 0 ..< S { result[sets[s]] = (Array(targets[offset[s] ..< offset[s + 1]]), Array(cosines[offset[s] ..< offset[s + 1]])) }
        return result
    }
}

/// Working memory of `MergeBatch.assign`, grown on demand, one per worker thread.
final class BatchScratch {
    /// Rows of the `Float` cosine block computed at a time.
    static let rowBlock = 64
    let kn = ScratchBuffer<Double>(), src = ScratchBuffer<Double>()
    let kf = ScratchBuffer<Float>(), gather = ScratchBuffer<Float>(), packed = ScratchBuffer<Float>()
    let rowKeys = ScratchBuffer<Float>(), out = ScratchBuffer<Float>(), groupMax = ScratchBuffer<Float>()
    let tiles = ScratchBuffer<UInt16>()
    let slot = ScratchBuffer<Int32>(), columnOf = ScratchBuffer<Int32>(), bits = ScratchBuffer<UInt64>()

    init() {}

    /// Room for `P` positions of dimension `D` and `S` kept sets.
    func reserve(P: Int, D: Int, sets S: Int) {
        let ld = (P + Int(CK_PANEL) - 1) / Int(CK_PANEL) * Int(CK_PANEL), groups = P / 64 + 1
        kn.reserve(P * D)
        src.reserve(D)
        for b in [kf, gather] { b.reserve(P * D) }
        packed.reserve(ck_packed_count(P, D))
        rowKeys.reserve(Self.rowBlock * D)
        out.reserve(Self.rowBlock * ld)
        groupMax.reserve(groups)
        columnOf.reserve(P)
        slot.reserve(S * P)
        bits.reserve(S * groups)
    }
}
