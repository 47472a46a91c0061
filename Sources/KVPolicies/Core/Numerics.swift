import Dispatch
import Foundation
import KVTrace

/// Top-k selection over candidate positions by (score descending, position ascending).
public enum Selection {
    /// `true` when candidate `a` ranks before `b`: higher score, then lower position. NaN ranks last.
    @inline(__always)
    static func better(_ sa: Double, _ a: Int, _ sb: Double, _ b: Int) -> Bool {
        let na = sa.isNaN, nb = sb.isNaN
        if na != nb { return nb }
        if sa != sb && !na { return sa > sb }
        return a < b
    }

    /// The best `k` of `candidates` by `score(position)`, in rank order (best first).
    /// A partial selection (quickselect) followed by a sort of the winners only.
    public static func topK(_ candidates: [Int], k: Int, score: (Int) -> Double) -> [Int] {
        if k <= 0 || candidates.isEmpty { return [] }
        var items = candidates.map { ($0, score($0)) }
        let n = items.count
        if k < n {
            var lo = 0, hi = n - 1
            let target = k - 1
            while lo < hi {
                // Median of three.
                let mid = lo + (hi - lo) / 2
                let a = items[lo], b = items[mid], c = items[hi]
                var pivot = b
                if better(a.1, a.0, b.1, b.0) != better(a.1, a.0, c.1, c.0) {
                    pivot = a
                } else if better(b.1, b.0, a.1, a.0) != better(b.1, b.0, c.1, c.0) {
                    pivot = b
                } else {
                    pivot = c
                }
                var i = lo, j = hi
                while i <= j {
                    while better(items[i].1, items[i].0, pivot.1, pivot.0) { i += 1 }
                    while better(pivot.1, pivot.0, items[j].1, items[j].0) { j -= 1 }
                    if i <= j { items.swapAt(i, j); i += 1; j -= 1 }
                }
                if target <= j { hi = j } else if target >= i { lo = i } else { break }
            }
            items.removeSubrange(k...)
        }
        items.sort { better($0.1, $0.0, $1.1, $1.0) }
        return items.map(\.0)
    }

    /// The best `k` positions of `range` by `scores[base + j]`, in rank order.
    public static func topK(_ range: Range<Int>, k: Int, scores: ArraySlice<Double>) -> [Int] {
        let b = scores.startIndex
        return topK(Array(range), k: k, score: { scores[b + $0] })
    }
}

/// Combines query-head score rows `[H][n]` into KV-head rows `[KVH][n]` (docs/policies.md#gqa-reduction).
public func aggregateGQA(_ s: ScoreMatrix, map: [Int], kvHeads: Int, _ mode: GQAReduction) -> ScoreMatrix {
    if kvHeads == s.rows, map == Array(0 ..< s.rows) { return s }
    let n = s.count
    var out = ScoreMatrix(rows: kvHeads, count: n, repeating: mode == .max ? -Double.infinity : 0)
    var members = [Int](repeating: 0, count: kvHeads)
    for h in 0 ..< s.rows {
        let g = map[h]
        members[g] += 1
        for j in 0 ..< n {
            switch mode {
            case .max: out[g, j] = Swift.max(out[g, j], s[h, j])
            case .mean, .sum: out[g, j] += s[h, j]
            }
        }
    }
    if mode == .mean {
        for g in 0 ..< kvHeads where members[g] > 1 { for j in 0 ..< n { out[g, j] /= Double(members[g]) } }
    }
    return out
}
