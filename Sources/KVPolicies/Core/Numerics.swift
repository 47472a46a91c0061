import Dispatch
import Foundation
import KVTrace

/// A raw pointer that may cross into `concurrentPerform` tasks writing disjoint ranges.
struct SendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ p: UnsafeMutablePointer<T>) { pointer = p }
}

/// Runs `body(0 ..< n)` on both cores when there is more than one task.
func parallelFor(_ n: Int, _ body: (Int) -> Void) {
    if n <= 1 {
        for i in 0 ..< n { body(i) }
        return
    }
    withoutActuallyEscaping(body) { b in
        let box = UnsafeSendableBox(b)
        DispatchQueue.concurrentPerform(iterations: n) { box.value($0) }
    }
}

/// Maps `0 ..< n` in parallel, keeping the order.
func parallelMap<T>(_ n: Int, _ body: (Int) throws -> T) throws -> [T] {
    var results = [Result<T, any Error>?](repeating: nil, count: n)
    results.withUnsafeMutableBufferPointer { buf in
        let p = SendablePointer(buf.baseAddress!)
        parallelFor(n) { i in p.pointer[i] = Result { try body(i) } }
    }
    return try results.map { try $0!.get() }
}

/// Maps `0 ..< n` in parallel, keeping the order, with one `scratch()` per worker thread (handed
/// out dynamically, so uneven tasks balance). For tasks that reuse big working buffers.
func parallelMap<S, T>(_ n: Int, scratch: () -> S, _ body: (S, Int) -> T) -> [T] {
    let workers = Swift.min(n, ProcessInfo.processInfo.activeProcessorCount)
    if workers <= 1 {
        let s = scratch()
        return (0 ..< n).map { body(s, $0) }
    }
    var results = [T?](repeating: nil, count: n)
    let counter = TaskCounter()
    results.withUnsafeMutableBufferPointer { buf in
        let p = SendablePointer(buf.baseAddress!)
        withoutActuallyEscaping(scratch) { make in
            withoutActuallyEscaping(body) { run in
                let box = UnsafeSendableBox((make, run))
                DispatchQueue.concurrentPerform(iterations: workers) { _ in
                    let s = box.value.0()
                    while let i = counter.next(below: n) { p.pointer[i] = box.value.1(s, i) }
                }
            }
        }
    }
    return results.map { $0! }
}

/// Hands out `0, 1, 2, …` to worker threads.
final class TaskCounter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func next(below n: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard value < n else { return nil }
        value += 1
        return value - 1
    }
}

/// Dot product of two contiguous `Double` vectors of length `n`.
@inline(__always)
func dot(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, _ n: Int) -> Double {
    var acc = SIMD8<Double>()
    var i = 0
    while i + 8 <= n {
        let x = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Double>.self)
        let y = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Double>.self)
        acc += x * y
        i += 8
    }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}
@inline(__always)
func dot(_ a: UnsafeMutablePointer<Double>, _ b: UnsafeMutablePointer<Double>, _ n: Int) -> Double {
    dot(UnsafePointer(a), UnsafePointer(b), n)
}
@inline(__always)
func dot(_ a: UnsafeMutablePointer<Double>, _ b: UnsafePointer<Double>, _ n: Int) -> Double {
    dot(UnsafePointer(a), b, n)
}
@inline(__always)
func dot(_ a: UnsafePointer<Double>, _ b: UnsafeMutablePointer<Double>, _ n: Int) -> Double {
    dot(a, UnsafePointer(b), n)
}

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
                if better(a.1, a.0, b.1, b.0) != better(a.1, a.0, c.1, c.0) { pivot = a }
                else if better(b.1, b.0, a.1, a.0) != better(b.1, b.0, c.1, c.0) { pivot = b }
                else { pivot = c }
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

/// Combines query-head score rows `[H][n]` into KV-head rows `[KVH][n]` (POLICIES.md §8).
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
