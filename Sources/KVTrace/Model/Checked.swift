/// Checked arithmetic for every size, offset and count that comes from a file or a flag.
///
/// Each operation returns the exact result or throws a `TraceError` naming `file` and the `field`
/// the value came from (`"trace.json"`, `"images[0].grid"`), so a hostile value becomes one line
/// and exit status 2 instead of an overflow trap. Negative inputs are refused where a size is
/// expected (`product`, `bytes`).
public enum Checked {
    /// `a · b`, or an error "`field`: a × b overflows".
    public static func multiply(_ a: Int, _ b: Int, field: String, file: String) throws -> Int {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        guard !o else { throw TraceError(file: file, "\(field): \(a) × \(b) overflows") }
        return r
    }

    /// `a + b`, or an error "`field`: a + b overflows".
    public static func add(_ a: Int, _ b: Int, field: String, file: String) throws -> Int {
        let (r, o) = a.addingReportingOverflow(b)
        guard !o else { throw TraceError(file: file, "\(field): \(a) + \(b) overflows") }
        return r
    }

    /// `a − b`, or an error "`field`: a − b overflows".
    public static func subtract(_ a: Int, _ b: Int, field: String, file: String) throws -> Int {
        let (r, o) = a.subtractingReportingOverflow(b)
        guard !o else { throw TraceError(file: file, "\(field): \(a) − \(b) overflows") }
        return r
    }

    /// The product of non-negative dimensions (1 for none), or an error naming `field` when a
    /// dimension is negative or the product overflows.
    public static func product(_ dims: [Int], field: String, file: String) throws -> Int {
        var p = 1
        for d in dims {
            guard d >= 0 else { throw TraceError(file: file, "\(field): dimension \(d) is negative") }
            let (r, o) = p.multipliedReportingOverflow(by: d)
            guard !o else { throw TraceError(file: file, "\(field): shape \(dims.shapeText) overflows") }
            p = r
        }
        return p
    }

    /// Bytes of `dims` elements of `width` bytes each, refused above `cap` (default: the memory cap,
    /// `traceMemoryCap`) before anything is allocated.
    public static func bytes(_ dims: [Int], width: Int, field: String, file: String, cap: Int = traceMemoryCap) throws -> Int {
        let n = try product(dims + [width], field: field, file: file)
        guard n <= cap else {
            throw TraceError(
                file: file, "\(field): \(dims.shapeText) needs \(n) bytes, above the memory cap of \(cap) bytes (KVSCOPE_MEMORY_CAP)")
        }
        return n
    }

    /// A `UInt64` read from a file as an `Int`, or an error when it is ≥ 2⁶³.
    public static func int(_ v: UInt64, field: String, file: String) throws -> Int {
        guard v <= UInt64(Int.max) else { throw TraceError(file: file, "\(field): \(v) is out of range") }
        return Int(v)
    }

    /// A `Double` holding an integer (a float-typed index array), or an error when it is NaN,
    /// infinite, fractional or outside `range`.
    public static func integral(_ v: Double, in range: ClosedRange<Int>, field: String, file: String) throws -> Int {
        guard v.isFinite, v == v.rounded(), v >= Double(range.lowerBound), v <= Double(range.upperBound) else {
            throw TraceError(file: file, "\(field): \(v) is not an integer in \(range.lowerBound) … \(range.upperBound)")
        }
        return Int(v)
    }
}
