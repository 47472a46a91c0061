import KVTrace

/// Every position of each row of a score matrix, best first by `Selection`'s order (score
/// descending, then position ascending; NaN last). The best `k` candidates `0 ..< L` of a row are
/// then the first `k` entries below `L`: one sort per layer and score matrix serves every budget
/// and recent window, with exactly the result of `Selection.topK` over `0 ..< L`.
public struct ScoreRanking: Sendable {
    /// `[rows][count]` positions, row-major.
    public let order: [Int]
    public let rows: Int, count: Int

    public init(_ s: ScoreMatrix) {
        rows = s.rows
        count = s.count
        let n = s.count, total = s.rows * s.count
        // Rows are ranked independently, on both cores, each straight into its slice of `order`.
        order = [Int](unsafeUninitializedCapacity: total) { out, filled in
            if total > 0 {
                let o = UnsafeSendableBox(out.baseAddress!)
                s.values.withUnsafeBufferPointer { v in
                    let vb = UnsafeSendableBox(v.baseAddress!)
                    parallelFor(s.rows) { r in Self.rank(vb.value + r * n, n, into: o.value + r * n) }
                }
            }
            filled = total
        }
    }

    /// The positions `0 ..< n` of one row of scores `v`, best first, into `pos`.
    static func rank(_ v: UnsafePointer<Double>, _ n: Int, into pos: UnsafeMutablePointer<Int>) {
        let keys = UnsafeMutablePointer<UInt64>.allocate(capacity: 2 * n), pos2 = UnsafeMutablePointer<Int>.allocate(capacity: n)
        defer { keys.deallocate(); pos2.deallocate() }
        for j in 0 ..< n {
            keys[j] = Self.key(v[j])
            pos[j] = j
        }
        radixSort(keys, pos, keys + n, pos2, count: n)
    }

    /// A sort key that orders scores as `Selection.better` does: ascending keys are descending
    /// scores (`−0` equal to `+0`), every NaN last and equal to the others.
    @inline(__always)
    static func key(_ x: Double) -> UInt64 {
        if x.isNaN { return .max }
        let bits = (x == 0 ? 0.0 : x).bitPattern
        let ascending = bits & (1 << 63) != 0 ? ~bits : bits | (1 << 63)
        return ~ascending
    }

    /// Sorts `pos` by `keys` ascending (`count` of each), stably (equal keys keep their order:
    /// positions ascending), by least-significant-digit radix passes of 11 bits; `k2` and `p2` are
    /// scratch of the same size. The result is in `keys` and `pos`.
    static func radixSort(
        _ keys: UnsafeMutablePointer<UInt64>, _ pos: UnsafeMutablePointer<Int>, _ k2: UnsafeMutablePointer<UInt64>,
        _ p2: UnsafeMutablePointer<Int>, count n: Int
    ) {
        guard n > 1 else { return }
        var (ka, pa, kb, pb) = (keys, pos, k2, p2)
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 2049) { count in
            var shift: UInt64 = 0
            while shift < 64 {
                count.initialize(repeating: 0)
                for i in 0 ..< n { count[Int((ka[i] >> shift) & 0x7FF) + 1] += 1 }
                shift += 11
                if count[1 ... 2048].contains(n) { continue }  // one bucket: nothing moves
                for i in 1 ... 2048 { count[i] += count[i - 1] }
                for i in 0 ..< n {
                    let d = Int((ka[i] >> (shift - 11)) & 0x7FF)
                    kb[count[d]] = ka[i]
                    pb[count[d]] = pa[i]
                    count[d] += 1
                }
                swap(&ka, &kb)
                swap(&pa, &pb)
            }
        }
        if pa != pos {
            keys.update(from: ka, count: n)
            pos.update(from: pa, count: n)
        }
    }

    /// The best `k` positions `< limit` of row `r`, in rank order (all of them when fewer);
    /// `limit ≤ count`.
    public func top(_ r: Int, k: Int, below limit: Int) -> [Int] {
        let want = min(max(0, k), limit)
        if want == 0 { return [] }
        var out = [Int]()
        out.reserveCapacity(want)
        order.withUnsafeBufferPointer { o in
            var j = r * count
            while out.count < want {
                let p = o[j]
                if p < limit { out.append(p) }
                j += 1
            }
        }
        return out
    }
}

extension LayerContext {
    /// The ranking of `scores` through the layer's work cache: keyed by the matrix itself (compared
    /// in full on a hit), so that it is shared by every budget of a policy whatever key its scores
    /// were cached under.
    public func sharedRanking(_ scores: ScoreMatrix) -> ScoreRanking {
        shared(["ranking", ScoreRankingKey(scores)] as [AnyHashable]) { ScoreRanking(scores) }
    }
}

/// A score matrix as a work-cache key: hashed by its shape and a sample of at most 64 values,
/// compared in full.
struct ScoreRankingKey: Hashable, @unchecked Sendable {
    let scores: ScoreMatrix
    init(_ s: ScoreMatrix) { scores = s }
    static func == (a: Self, b: Self) -> Bool { a.scores == b.scores }
    func hash(into h: inout Hasher) {
        h.combine(scores.rows)
        h.combine(scores.count)
        let n = scores.values.count
        let step = max(1, n / 64)
        var i = 0
        while i < n {
            let x = scores.values[i]
            h.combine(x.isNaN ? Double.nan.bitPattern : (x == 0 ? 0 : x.bitPattern))
            i += step
        }
    }
}
