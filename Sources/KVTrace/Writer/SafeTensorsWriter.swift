import Foundation

/// One tensor to write: raw little-endian bytes with a dtype and shape.
public struct TensorData: Sendable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    public var data: Data

    public init(name: String, dtype: DType, shape: [Int], data: Data) {
        precondition(shape.reduce(1, *) * dtype.width == data.count, "\(name): \(data.count) bytes for shape \(shape) \(dtype)")
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    /// Encodes Floats as F16, BF16 (round to nearest even), F32 or F64.
    public init(name: String, floats: [Float], shape: [Int], as dtype: DType = .f32) {
        var d = Data(count: floats.count * dtype.width)
        d.withUnsafeMutableBytes { raw in
            switch dtype {
            case .f16:
                for (i, f) in floats.enumerated() {
                    raw.storeBytes(of: Float16(f).bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                }
            case .bf16:
                for (i, f) in floats.enumerated() {
                    let b = f.bitPattern
                    let r = f.isNaN ? UInt16(0x7FC0) : UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
                    raw.storeBytes(of: r.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                }
            case .f32:
                for (i, f) in floats.enumerated() { raw.storeBytes(of: f.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            case .f64:
                for (i, f) in floats.enumerated() {
                    raw.storeBytes(of: Double(f).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self)
                }
            default: preconditionFailure("not a float dtype")
            }
        }
        self.init(name: name, dtype: dtype, shape: shape, data: d)
    }

    /// Encodes Doubles as F64 (or narrower floats).
    public init(name: String, doubles: [Double], shape: [Int], as dtype: DType = .f64) {
        if dtype == .f64 {
            var d = Data(count: doubles.count * 8)
            d.withUnsafeMutableBytes { raw in
                for (i, x) in doubles.enumerated() { raw.storeBytes(of: x.bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self) }
            }
            self.init(name: name, dtype: .f64, shape: shape, data: d)
        } else {
            self.init(name: name, floats: doubles.map { Float($0) }, shape: shape, as: dtype)
        }
    }

    /// Encodes integers as I64, I32, U8 or BOOL.
    public init(name: String, ints: [Int], shape: [Int], as dtype: DType = .i64) {
        var d = Data(count: ints.count * dtype.width)
        d.withUnsafeMutableBytes { raw in
            for (i, x) in ints.enumerated() {
                switch dtype {
                case .i64: raw.storeBytes(of: Int64(x).littleEndian, toByteOffset: 8 * i, as: Int64.self)
                case .i32: raw.storeBytes(of: Int32(x).littleEndian, toByteOffset: 4 * i, as: Int32.self)
                case .i16: raw.storeBytes(of: Int16(x).littleEndian, toByteOffset: 2 * i, as: Int16.self)
                case .u8, .bool, .i8: raw.storeBytes(of: UInt8(truncatingIfNeeded: x), toByteOffset: i, as: UInt8.self)
                default: preconditionFailure("not an integer dtype")
                }
            }
        }
        self.init(name: name, dtype: dtype, shape: shape, data: d)
    }
}

/// Writes `.safetensors` files as the reference writer does: header padded with spaces so data
/// starts at a multiple of 8, tensors in the given order, contiguous, ending at the end of the file.
public enum SafeTensorsWriter {
    /// One tensor of a file whose data `encode(_:metadata:fill:)` lets the caller write in place.
    public struct Slot: Sendable {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        public init(name: String, dtype: DType, shape: [Int]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
        }
        public var byteCount: Int { shape.reduce(1, *) * dtype.width }
        /// Rows along the first dimension (1 for a scalar): the unit `fill` is asked for.
        public var rows: Int { shape.first ?? 1 }
        /// Bytes of one row (0 for a tensor without elements).
        public var rowBytes: Int { byteCount == 0 ? 0 : byteCount / rows }
    }

    public static func encode(_ tensors: [TensorData], metadata: [String: String] = [:]) throws -> Data {
        try encode(tensors.map { Slot(name: $0.name, dtype: $0.dtype, shape: $0.shape) }, metadata: metadata) { i, _, raw in
            tensors[i].data.withUnsafeBytes { raw.copyMemory(from: $0) }
        }
    }

    /// The file's bytes with each tensor's data written by `fill(i, rows, bytes)` straight into its
    /// place: `rows` is a range of the tensor's first dimension (here all of it, `0 ..< slots[i].rows`)
    /// and `bytes` holds its zero bytes, where the little-endian data of those rows goes. In order.
    public static func encode(
        _ slots: [Slot], metadata: [String: String] = [:], fill: (Int, Range<Int>, UnsafeMutableRawBufferPointer) throws -> Void
    ) throws -> Data {
        let head = try header(slots, metadata: metadata)
        var out = Data(count: head.count + slots.reduce(0) { $0 + $1.byteCount })
        try out.withUnsafeMutableBytes { raw in
            head.withUnsafeBytes { raw.copyMemory(from: $0) }
            var at = head.count
            for (i, t) in slots.enumerated() {
                try fill(i, 0 ..< t.rows, UnsafeMutableRawBufferPointer(rebasing: raw[at ..< at + t.byteCount]))
                at += t.byteCount
            }
        }
        return out
    }

    /// Writes the bytes `encode(_:metadata:fill:)` returns to `url` atomically, streamed: the
    /// header, then each tensor in parts of whole rows of at most `partBytes` (at least one row;
    /// 4 MiB by default), each written as soon as `fill` wrote it into one reused, zeroed buffer,
    /// its writeback started while the next part is computed; `fsync(2)` and the rename at the end
    /// (`AtomicFile.write(to:streaming:)`). The same bytes, without a buffer of the whole file.
    public static func write(
        _ slots: [Slot], metadata: [String: String] = [:], to url: URL, partBytes: Int = 4 << 20,
        fill: (Int, Range<Int>, UnsafeMutableRawBufferPointer) throws -> Void
    ) throws {
        let head = try header(slots, metadata: metadata)
        /// Rows per part of each slot (all rows of an empty one).
        let rowsPerPart = slots.map { t in t.rowBytes == 0 ? Swift.max(t.rows, 1) : Swift.max(1, partBytes / t.rowBytes) }
        let room = zip(slots, rowsPerPart).map { t, n in Swift.min(t.rows, n) * t.rowBytes }.max() ?? 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Swift.max(room, 1), alignment: 64)
        defer { buffer.deallocate() }
        try AtomicFile.write(to: url) { sink in
            try sink.write(head)
            for (i, t) in slots.enumerated() {
                let rowBytes = t.rowBytes
                var r = 0
                repeat {
                    let rows = r ..< Swift.min(t.rows, r + rowsPerPart[i])
                    let bytes = UnsafeMutableRawBufferPointer(rebasing: buffer[0 ..< rows.count * rowBytes])
                    if !bytes.isEmpty { bytes.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: bytes.count) }
                    try fill(i, rows, bytes)
                    try sink.write(UnsafeRawBufferPointer(bytes))
                    sink.startWriteback()
                    r = rows.upperBound
                } while r < t.rows
            }
        }
    }

    /// The 8-byte little-endian header length, then the JSON header (`dtype`, `shape`,
    /// `data_offsets` per tensor, `__metadata__`; keys sorted) padded with spaces so the data
    /// starts at a multiple of 8.
    static func header(_ slots: [Slot], metadata: [String: String]) throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for t in slots {
            header[t.name] = ["dtype": t.dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + t.byteCount]] as [String: Any]
            offset += t.byteCount
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data(count: 8)
        out.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(json.count).littleEndian, as: UInt64.self) }
        return out + json
    }

    /// Encodes and writes atomically.
    public static func write(_ tensors: [TensorData], metadata: [String: String] = [:], to url: URL) throws {
        try AtomicFile.write(encode(tensors, metadata: metadata), to: url)
    }
}

/// Writes `.npy` files (format 1.0; 2.0 when the header needs it).
public enum NPYWriter {
    public static func encode(_ t: TensorData) -> Data {
        let shape = t.shape.count == 1 ? "(\(t.shape[0]),)" : "(" + t.shape.map(String.init).joined(separator: ", ") + ")"
        var text = "{'descr': '\(t.dtype.numpyDescr)', 'fortran_order': False, 'shape': \(shape), }"
        let v1 = text.utf8.count + 1 + 10 < 65_536
        let pre = v1 ? 10 : 12
        while (pre + text.utf8.count + 1) % 64 != 0 { text += " " }
        text += "\n"
        var out = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, v1 ? 1 : 2, 0])
        if v1 {
            withUnsafeBytes(of: UInt16(text.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        } else {
            withUnsafeBytes(of: UInt32(text.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        }
        out.append(Data(text.utf8))
        out.append(t.data)
        return out
    }

    public static func write(_ t: TensorData, to url: URL) throws { try AtomicFile.write(encode(t), to: url) }
}
