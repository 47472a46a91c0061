import Foundation

/// `Σ a[d]·b[d]` over `n` contiguous values, eight lanes at a time, then the tail in order.
/// The one dot product of KVScope (`Double` for policies and metrics, `Float` for synthetic traces).
@inlinable @inline(__always)
public func dot<T: BinaryFloatingPoint & SIMDScalar>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ n: Int) -> T {
    var acc = SIMD8<T>()
    var i = 0
    while i + 8 <= n {
        acc += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<T>.self) * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<T>.self)
        i += 8
    }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

@inlinable @inline(__always)
public func dot<T: BinaryFloatingPoint & SIMDScalar>(_ a: UnsafeMutablePointer<T>, _ b: UnsafeMutablePointer<T>, _ n: Int) -> T {
    dot(UnsafePointer(a), UnsafePointer(b), n)
}
@inlinable @inline(__always)
public func dot<T: BinaryFloatingPoint & SIMDScalar>(_ a: UnsafeMutablePointer<T>, _ b: UnsafePointer<T>, _ n: Int) -> T {
    dot(UnsafePointer(a), b, n)
}
@inlinable @inline(__always)
public func dot<T: BinaryFloatingPoint & SIMDScalar>(_ a: UnsafePointer<T>, _ b: UnsafeMutablePointer<T>, _ n: Int) -> T {
    dot(a, UnsafePointer(b), n)
}

/// The softmax of KVScope: `p[j] = exp(x[j] − max x) / Σ exp(x[j'] − max x)` over `n` values.
public enum Softmax {
    /// Replaces `x[j]` by `exp(x[j] − m)` with `m = max x` and returns `m` (the unnormalised weights).
    @inlinable
    public static func exponentiate(_ x: UnsafeMutablePointer<Double>, _ n: Int) -> Double {
        var m = -Double.infinity
        for j in 0 ..< n { m = Swift.max(m, x[j]) }
        for j in 0 ..< n { x[j] = Foundation.exp(x[j] - m) }
        return m
    }

    /// In place, in `Double`.
    @inlinable
    public static func normalize(_ x: UnsafeMutablePointer<Double>, _ n: Int) {
        var m = -Double.infinity
        for j in 0 ..< n { m = Swift.max(m, x[j]) }
        var s = 0.0
        for j in 0 ..< n { x[j] = Foundation.exp(x[j] - m); s += x[j] }
        for j in 0 ..< n { x[j] /= s }
    }

    /// In place, in `Float`.
    @inlinable
    public static func normalize(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        var m = -Float.infinity
        for j in 0 ..< n { m = Swift.max(m, x[j]) }
        var s: Float = 0
        for j in 0 ..< n { x[j] = expf(x[j] - m); s += x[j] }
        for j in 0 ..< n { x[j] /= s }
    }
}
