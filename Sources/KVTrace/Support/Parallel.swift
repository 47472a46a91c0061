import Dispatch
import Foundation
import Synchronization

/// Runs `body(0 ..< n)` on both cores when there is more than one task.
public func parallelFor(_ n: Int, _ body: (Int) -> Void) {
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
public func parallelMap<T>(_ n: Int, _ body: (Int) throws -> T) throws -> [T] {
    var results = [Result<T, any Error>?](repeating: nil, count: n)
    results.withUnsafeMutableBufferPointer { buf in
        let p = UnsafeSendableBox(buf.baseAddress!)
        parallelFor(n) { i in p.value[i] = Result { try body(i) } }
    }
    return try results.map { try $0!.get() }
}

/// Maps `0 ..< n` in parallel, keeping the order, with one `scratch()` per worker thread (handed
/// out dynamically, so uneven tasks balance). For tasks that reuse big working buffers.
public func parallelMap<S, T>(_ n: Int, scratch: () -> S, _ body: (S, Int) -> T) -> [T] {
    let workers = Swift.min(n, ProcessInfo.processInfo.activeProcessorCount)
    if workers <= 1 {
        let s = scratch()
        return (0 ..< n).map { body(s, $0) }
    }
    var results = [T?](repeating: nil, count: n)
    let counter = TaskCounter()
    results.withUnsafeMutableBufferPointer { buf in
        let p = UnsafeSendableBox(buf.baseAddress!)
        withoutActuallyEscaping(scratch) { make in
            withoutActuallyEscaping(body) { run in
                let box = UnsafeSendableBox((make, run))
                DispatchQueue.concurrentPerform(iterations: workers) { _ in
                    let s = box.value.0()
                    while let i = counter.next(below: n) { p.value[i] = box.value.1(s, i) }
                }
            }
        }
    }
    return results.map { $0! }
}

/// A value shared by worker threads, read and written only inside `withLock`: a `Mutex` in a
/// class, so that `@Sendable` closures can capture it (counters, collected rows, progress).
public final class Locked<Value>: Sendable {
    private let mutex: Mutex<Value>
    public init(_ value: sending Value) { mutex = Mutex(value) }
    public func withLock<R: Sendable, E: Error>(_ body: (inout sending Value) throws(E) -> R) throws(E) -> R {
        try mutex.withLock { (v: inout sending Value) throws(E) -> sending R in try body(&v) }
    }
}

/// Hands out `0, 1, 2, …` to worker threads.
public final class TaskCounter: Sendable {
    private let value = Locked(0)
    public init() {}
    public func next(below n: Int) -> Int? {
        value.withLock { v in
            guard v < n else { return nil }
            v += 1
            return v - 1
        }
    }
}

/// Runs `body` over `items` on up to `workers` threads, handing items out in order as threads free
/// up; `done(item, result)` runs under a lock as each finishes. The first error stops handing out
/// items and is rethrown.
public func parallelEach<R>(
    _ items: [Int], workers: Int, _ body: @Sendable (Int) throws -> R,
    done: @Sendable (Int, R) throws -> Void
) throws {
    let lock = NSLock()
    let counter = TaskCounter()
    let failure = Locked<(any Error)?>(nil)
    let n = max(1, min(workers, items.count))
    DispatchQueue.concurrentPerform(iterations: n) { _ in
        while failure.withLock({ $0 }) == nil, let i = counter.next(below: items.count) {
            do {
                let r = try body(items[i])
                lock.lock()
                defer { lock.unlock() }
                try done(items[i], r)
            } catch {
                failure.withLock { if $0 == nil { $0 = error } }
                return
            }
        }
    }
    if let e = failure.withLock({ $0 }) { throw e }
}
