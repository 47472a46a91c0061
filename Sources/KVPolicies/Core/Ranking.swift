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
        s.values.withUnsafeBufferPointer { v in
            for r in 0 ..< s.rows {
                let base = r * s.count
                var items = (0 ..< s.count).map { ($0, v[base + $0]) }
                // A strict total order (positions are distinct), so any sort gives this one result.
                items.sort { Selection.better($0.1, $0.0, $1.1, $1.0) }
                out.append(contentsOf: items.map(\.0))
            }
        }
        order = out
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
