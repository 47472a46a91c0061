import Foundation

/// Work shared by every policy, budget and parameter setting that runs on one layer: scores,
/// key norms, merge assignments. A value is computed the first time its key is asked for and
/// returned as is afterwards, so a result never depends on what ran before it.
///
/// Keys must name everything the value depends on besides the layer's tensors and the compression
/// point (which are fixed for the cache's lifetime: one cache per layer and `P`).
/// The engine creates one per layer; a `LayerContext` built without one computes everything afresh.
public final class WorkCache: @unchecked Sendable {
    // @unchecked: the dictionary is only touched under `lock`; values are immutable once stored.
    private let lock = NSLock()
    private var store: [AnyHashable: Any] = [:]
    private(set) var hits = 0

    public init() {}

    /// `make()`, computed once per key. Errors are not stored (the next call tries again).
    /// Two threads asking for the same new key may both compute it; the first stored value wins.
    public func value<V>(_ key: AnyHashable, _ make: () throws -> V) rethrows -> V {
        lock.lock()
        // Unwrap the stored `Any` first: an absent key cast to an optional `V` would succeed as nil.
        if let any = store[key], let v = any as? V { hits += 1; lock.unlock(); return v }
        lock.unlock()
        let v = try make()
        lock.lock()
        defer { lock.unlock() }
        if let any = store[key], let w = any as? V { return w }
        store[key] = v
        return v
    }

    /// How many values are stored.
    public var count: Int { lock.lock(); defer { lock.unlock() }; return store.count }
}

extension LayerContext {
    /// `make()` through the layer's work cache (computed afresh when the context has none).
    public func shared<V>(_ key: AnyHashable, _ make: () throws -> V) rethrows -> V {
        guard let cache else { return try make() }
        return try cache.value(WorkKey(layer: layer, P: compressionPoint, key: key), make)
    }
}

/// The full key of a cached value: the layer and compression point, then the caller's key.
struct WorkKey: Hashable {
    var layer: Int
    var P: Int
    var key: AnyHashable
}
