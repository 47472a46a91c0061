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
        var out = [Int]()
        out.reserveCapacity(s.rows * s.count)
        let n = s.count
        var keys = [UInt64](repeating: 0, count: n), keys2 = keys
        var pos = [Int](repeating: 0, count: n), pos2 = pos
        s.values.withUnsafeBufferPointer { v in
            for r in 0 ..< s.rows {
                for j in 0 ..< n {
                    keys[j] = Self.key(v[r * n + j])
                    pos[j] = j
                }
                Self.radixSort(&keys, &pos, &keys2, &pos2)
                out.append(contentsOf: pos)
            }
        }
        order = out
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

    /// Sorts `pos` by `keys` ascending, stably (equal keys keep their order: positions ascending),
    /// by least-significant-digit radix passes of 11 bits; `k2` and `p2` are scratch of the same size.
    static func radixSort(_ keys: inout [UInt64], _ pos: inout [Int], _ k2: inout [UInt64], _ p2: inout [Int]) {
        let n = keys.count
        guard n > 1 else { return }
        var count = [Int](repeating: 0, count: 2049)
        var shift: UInt64 = 0
        while shift < 64 {
            for i in 0 ..< 2049 { count[i] = 0 }
            for i in 0 ..< n { count[Int((keys[i] >> shift) & 0x7FF) + 1] += 1 }
            if count[1 ... 2048].contains(n) { shift += 11; continue }  // one bucket: nothing moves
            for i in 1 ... 2048 { count[i] += count[i - 1] }
            for i in 0 ..< n {
                let d = Int((keys[i] >> shift) & 0x7FF)
                k2[count[d]] = keys[i]
                p2[count[d]] = pos[i]
                count[d] += 1
            }
            swap(&keys, &k2)
            swap(&pos, &p2)
            shift += 11
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
