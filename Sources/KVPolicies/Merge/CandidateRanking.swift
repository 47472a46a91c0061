import Foundation
import CKernels

/// One KV head's merge candidates, ranked once per layer and reused by every budget, ratio
/// setting, merge strategy and policy that merges on that layer (docs/policies.md#the-merge-wrapper).
///
/// The prefill positions `0 ..< P` are cut into fixed blocks of `width` positions. For a block
/// whose kept positions are dense (at least half the block, e.g. a run of text tokens or a recent
/// window that every setting keeps) the ranking stores, per evicted position `e`, the `Float` best
/// and second-best cosine of `e`'s key with the block's kept keys and the position attaining the
/// best: computed the first time some setting needs that row against that block mask, read back
/// by every later setting. Sparse blocks (scattered heavy hitters, which move with the budget) are
/// searched afresh with the rest of the kept keys. The per-row top-2 over the whole kept set is
/// then the merge of the per-block top-2s.
///
/// Only the `Float` pre-pass is shared: `MergeAssigner` still settles a row from it only when its
/// best beats its second by more than the margin and re-scores every other row in `Double`
/// against the whole kept set, so targets and cosines are exactly those of a fresh search (no
/// `Float` cosine of a block differs from the fresh search's by more than `Float` rounding, which
/// the margin covers).
///
/// Memory: one stored mask costs `12·P` bytes; at most `maxMasks` masks are stored per head (then
/// further dense blocks are searched afresh too). Thread-safe: one lock per head.
final class CandidateRanking: @unchecked Sendable {
    // @unchecked: `masks` and the entries are only touched under `lock`.
    /// Positions per block.
    static let width = 64
    let positions: Int
    let maxMasks: Int
    private let lock = NSLock()
    private var masks: [BlockMask: Entry] = [:]

    struct BlockMask: Hashable {
        var block: Int
        var bits: UInt64
    }

    /// Per position: best and second `Float` cosine (NaN: not computed yet) and the best's position.
    final class Entry {
        var best: [Float], second: [Float], arg: [Int32]
        init(_ n: Int) {
            best = Array(repeating: .nan, count: n)
            second = Array(repeating: .nan, count: n)
            arg = Array(repeating: -1, count: n)
        }
    }

    /// A ranking of `positions` prefill positions; `maxMasks` defaults to one per block.
    init(positions: Int, maxMasks: Int? = nil) {
        self.positions = positions
        self.maxMasks = maxMasks ?? (positions + Self.width - 1) / Self.width
    }

    /// How many block masks are stored.
    var storedMasks: Int { lock.lock(); defer { lock.unlock() }; return masks.count }

    /// For each evicted row `i`, the `Float` best and second-best of `ef[i] · kf[k]` over the kept
    /// slots `k` and a slot attaining the best (ties: any), as `ck_top2` over all of `kf` gives.
    /// `kf` holds the normalised `Float` keys of `kept` in slot order, `ef` those of `evicted`;
    /// both finite.
    func top2(
        kept: [Int], evicted: [Int], dim D: Int, keptKeys kf: UnsafePointer<Float>, evictedKeys ef: UnsafePointer<Float>,
        scratch m: AssignScratch, best: UnsafeMutablePointer<Float>, second: UnsafeMutablePointer<Float>, arg: UnsafeMutablePointer<Int32>
    ) {
        let C = kept.count, E = evicted.count, W = Self.width
        let nb = (positions + W - 1) / W
        m.reserveRanking(P: positions, blocks: nb)
        let slot = m.slotOf.base, bits = m.bits.base
        bits.update(repeating: 0, count: nb)
        for (k, p) in kept.enumerated() {
            precondition(p >= 0 && p < positions, "kept position \(p) outside 0..<\(positions)")
            slot[p] = Int32(k)
            bits[p / W] |= 1 << UInt64(p % W)
        }
        best.update(repeating: -.infinity, count: E)
        second.update(repeating: -.infinity, count: E)
        arg.update(repeating: 0, count: E)
        /// Merges one candidate top-2 into row `i`'s.
        @inline(__always) func fold(_ i: Int, _ b: Float, _ s: Float, _ a: Int32) {
            if b > best[i] {
                second[i] = Swift.max(best[i], s)
                best[i] = b
                arg[i] = a
            } else {
                second[i] = Swift.max(second[i], b)
            }
        }
        /// `ck_top2` of the `rows` float keys at `a` over the kept slots `cols`; results in m.b2/s2/a2.
        func search(_ a: UnsafePointer<Float>, rows: Int, cols: [Int32]) {
            for (j, k) in cols.enumerated() { (m.gather.base + j * D).update(from: kf + Int(k) * D, count: D) }
            ck_pack_panels(m.gather.base, cols.count, D, m.packed.base)
            ck_top2(a, rows, D, m.packed.base, cols.count, m.b2.base, m.s2.base, m.a2.base)
        }
        lock.lock()
        defer { lock.unlock() }
        var rest: [Int32] = []
        rest.reserveCapacity(C)
        for b in 0 ..< nb where bits[b] != 0 {
            let start = b * W, w = Swift.min(W, positions - start)
            let cols = (start ..< start + w).filter { bits[b] & (1 << UInt64($0 - start)) != 0 }
            let key = BlockMask(block: b, bits: bits[b])
            let entry: Entry
            if let e = masks[key] {
                entry = e
            } else if 2 * cols.count >= w && masks.count < maxMasks {
                entry = Entry(positions)
                masks[key] = entry
            } else {
                rest.append(contentsOf: cols.map { slot[$0] })
                continue
            }
            // Rows this mask has not seen yet, searched against the block's kept keys.
            let missing = (0 ..< E).filter { entry.best[evicted[$0]].isNaN }
            if !missing.isEmpty {
                let rows: UnsafePointer<Float>
                if missing.count == E {
                    rows = ef
                } else {
                    for (r, i) in missing.enumerated() { (m.rowKeys.base + r * D).update(from: ef + i * D, count: D) }
                    rows = UnsafePointer(m.rowKeys.base)
                }
                search(rows, rows: missing.count, cols: cols.map { slot[$0] })
                for (r, i) in missing.enumerated() {
                    let p = evicted[i]
                    entry.best[p] = m.b2.base[r]
                    entry.second[p] = m.s2.base[r]
                    entry.arg[p] = Int32(cols[Int(m.a2.base[r])])
                }
            }
            for i in 0 ..< E {
                let p = evicted[i]
                fold(i, entry.best[p], entry.second[p], slot[Int(entry.arg[p])])
            }
        }
        if !rest.isEmpty {
            search(ef, rows: E, cols: rest)
            for i in 0 ..< E { fold(i, m.b2.base[i], m.s2.base[i], rest[Int(m.a2.base[i])]) }
        }
    }
}

/// Work-cache key of a KV head's `CandidateRanking` (the layer and `P` are in the cache key).
struct RankingKey: Hashable {
    var head: Int
}
