import CKernels
/// A read-only n-dimensional array view: a dtype, a shape and a byte range of a `ByteStorage`.
///
/// Reading converts to `Float` / `Double` on the fly; nothing is copied until asked.
/// Data are little-endian and row-major unless `byteSwapped` (big-endian `.npy`).
public struct Tensor: Sendable {
    public let dtype: DType
    public let shape: [Int]
    public let storage: ByteStorage
    /// Byte offset of the first element inside `storage`.
    public let offset: Int
    /// True for big-endian `.npy` data that must be swapped on read.
    public let byteSwapped: Bool

    public init(dtype: DType, shape: [Int], storage: ByteStorage, offset: Int, byteSwapped: Bool = false) {
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
        self.offset = offset
        self.byteSwapped = byteSwapped
    }

    /// Number of elements (1 for a scalar, 0 for an empty tensor).
    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    public var byteCount: Int { count * dtype.width }

    /// The `i`-th sub-array along the leading axis (e.g. one layer of an `[L, H, Q, T]` array).
    public func slice(_ i: Int) -> Tensor {
        precondition(rank >= 1 && i >= 0 && i < shape[0], "slice out of range")
        let inner = Array(shape.dropFirst())
        let n = inner.reduce(1, *)
        return Tensor(
            dtype: dtype, shape: inner, storage: storage, offset: offset + i * n * dtype.width,
            byteSwapped: byteSwapped)
    }

    /// The same bytes with another shape of equal element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "reshape changes the element count")
        return Tensor(dtype: dtype, shape: newShape, storage: storage, offset: offset, byteSwapped: byteSwapped)
    }

    /// Element `i` (flat, row-major) as a Double.
    @inlinable public func double(at i: Int) -> Double {
        let p = storage.base + offset + i * dtype.width
        switch dtype {
        case .f16:
            var b = p.loadUnaligned(as: UInt16.self)
            if byteSwapped { b = b.byteSwapped }
            return Double(Float16(bitPattern: b))
        case .bf16:
            var b = p.loadUnaligned(as: UInt16.self)
            if byteSwapped { b = b.byteSwapped }
            return Double(Float(bitPattern: UInt32(b) << 16))
        case .f32:
            var b = p.loadUnaligned(as: UInt32.self)
            if byteSwapped { b = b.byteSwapped }
            return Double(Float(bitPattern: b))
        case .f64:
            var b = p.loadUnaligned(as: UInt64.self)
            if byteSwapped { b = b.byteSwapped }
            return Double(bitPattern: b)
        case .i8: return Double(p.load(as: Int8.self))
        case .u8, .bool: return Double(p.load(as: UInt8.self))
        case .i16:
            var b = p.loadUnaligned(as: Int16.self)
            if byteSwapped { b = b.byteSwapped }
            return Double(b)
        case .i32:
            var b = p.loadUnaligned(as: Int32.self)
            if byteSwapped { b = b.byteSwapped }
            return Double(b)
        case .i64:
            var b = p.loadUnaligned(as: Int64.self)
            if byteSwapped { b = b.byteSwapped }
            return Double(b)
        }
    }

    /// Element `i` as an Int (for masks and indices; floats are truncated).
    public func int(at i: Int) -> Int {
        let p = storage.base + offset + i * dtype.width
        switch dtype {
        case .i64:
            var b = p.loadUnaligned(as: Int64.self)
            if byteSwapped { b = b.byteSwapped }
            return Int(b)
        case .i32:
            var b = p.loadUnaligned(as: Int32.self)
            if byteSwapped { b = b.byteSwapped }
            return Int(b)
        default:
            let d = double(at: i)
            // Saturating: NaN is 0, values beyond the Int range clamp (never a conversion trap).
            return d.isNaN ? 0 : d >= 9.2e18 ? Int.max : d <= -9.2e18 ? Int.min : Int(d)
        }
    }

    /// Converts `count` elements starting at flat index `start` into `out` (Float).
    /// The hot path for reading attention rows, keys and values.
    public func copyFloats(from start: Int, count n: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(start >= 0 && start + n <= count)
        let p = storage.base + offset + start * dtype.width
        switch (dtype, byteSwapped) {
        case (.f32, false):
            UnsafeMutableRawPointer(out).copyMemory(from: p, byteCount: n * 4)
        case (.f16, false):
            ck_f16_to_f32(p, n, out)
        case (.bf16, false):
            for i in 0 ..< n {
                out[i] = Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            }
        default:
            for i in 0 ..< n { out[i] = Float(double(at: start + i)) }
        }
    }

    /// Converts `count` elements starting at flat index `start` into `out` (Double).
    public func copyDoubles(from start: Int, count n: Int, into out: UnsafeMutablePointer<Double>) {
        precondition(start >= 0 && start + n <= count)
        let p = storage.base + offset + start * dtype.width
        switch (dtype, byteSwapped) {
        case (.f64, false):
            UnsafeMutableRawPointer(out).copyMemory(from: p, byteCount: n * 8)
        case (.f32, false):
            ck_f32_to_f64(p, n, out)  // exact, with F16C/AVX where the CPU has them
        case (.f16, false):
            ck_f16_to_f64(p, n, out)
        default:
            for i in 0 ..< n { out[i] = double(at: start + i) }
        }
    }

    /// All elements as Floats.
    public func floats() -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buf, n in
            if count > 0 { copyFloats(from: 0, count: count, into: buf.baseAddress!) }
            n = count
        }
    }

    /// All elements as Doubles.
    public func doubles() -> [Double] {
        [Double](unsafeUninitializedCapacity: count) { buf, n in
            if count > 0 { copyDoubles(from: 0, count: count, into: buf.baseAddress!) }
            n = count
        }
    }

    /// All elements as Ints (float elements truncated; use `checkedInts` for values from a file).
    public func ints() -> [Int] { (0 ..< count).map { int(at: $0) } }

    /// All elements as Ints, each required to be an integer in `range`: a float element that is
    /// NaN, infinite, fractional or out of range (and an integer out of range) is an error naming
    /// `field` and the flat index.
    public func checkedInts(in range: ClosedRange<Int>, field: String, file: String) throws -> [Int] {
        try (0 ..< count).map { i in
            let v: Int
            if dtype.isFloat {
                v = try Checked.integral(double(at: i), in: range, field: "\(field)[\(i)]", file: file)
            } else {
                v = int(at: i)
            }
            guard range.contains(v) else {
                throw TraceError(file: file, "\(field)[\(i)]: \(v) is outside \(range.lowerBound) … \(range.upperBound)")
            }
            return v
        }
    }

    /// True when any float element is NaN or infinite (integers are always finite).
    public func firstNonFinite() -> Int? {
        guard dtype.isFloat else { return nil }
        let chunk = 4096
        var buf = [Float](repeating: 0, count: Swift.min(chunk, Swift.max(count, 1)))
        var start = 0
        while start < count {
            let n = Swift.min(chunk, count - start)
            if dtype == .f64 {
                for i in 0 ..< n where !double(at: start + i).isFinite { return start + i }
            } else {
                buf.withUnsafeMutableBufferPointer { copyFloats(from: start, count: n, into: $0.baseAddress!) }
                for i in 0 ..< n where !buf[i].isFinite { return start + i }
            }
            start += n
        }
        return nil
    }
}

extension Array where Element == Int {
    /// `[9, 111, 111]`-style text for messages.
    public var shapeText: String { "[" + map(String.init).joined(separator: ", ") + "]" }
}
