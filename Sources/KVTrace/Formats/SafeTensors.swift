import Foundation

/// Reader for `.safetensors` (docs/trace-format.md#safetensors): `u64` header length `N`, `N` bytes of JSON,
/// then the byte buffer. Every offset, size and overlap is checked before any tensor is touched.
public struct SafeTensorsFile: Sendable {
    public let storage: ByteStorage
    public let tensors: [String: Tensor]
    /// Tensor names in buffer order.
    public let names: [String]
    public let metadata: [String: String]
    public let warnings: [TraceWarning]

    /// Dtypes read; anything else is refused with the tensor's name.
    static let dtypes: [String: DType] = [
        "F16": .f16, "BF16": .bf16, "F32": .f32, "F64": .f64, "I32": .i32, "I64": .i64, "BOOL": .bool,
        "U8": .u8, "I8": .i8, "I16": .i16,
    ]

    public static let maxHeaderBytes = 100_000_000

    public init(_ url: URL) throws { try self.init(storage: ByteStorage.map(url)) }

    public init(storage: ByteStorage) throws {
        let file = storage.name
        self.storage = storage
        guard storage.count >= 8 else { throw TraceError(file: file, "truncated: shorter than the 8-byte safetensors header length") }
        let n64 = storage.loadLE(UInt64.self, at: 0)
        guard n64 <= UInt64(Self.maxHeaderBytes) else {
            throw TraceError(file: file, "safetensors header length \(n64) is above the 100 MB limit")
        }
        let n = Int(n64)
        guard 8 + n <= storage.count else {
            throw TraceError(file: file, "truncated: header length \(n) runs past the end of the file (\(storage.count) bytes)")
        }
        let headerBytes = UnsafeRawBufferPointer(start: storage.base + 8, count: n)
        guard let text = String(bytes: headerBytes, encoding: .utf8) else {
            throw TraceError(file: file, "safetensors header is not valid UTF-8")
        }
        if let dup = JSONDuplicateKeys.first(in: text) {
            throw TraceError(file: file, "safetensors header has a duplicate key '\(dup)'")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: Data(text.utf8)), let header = obj as? [String: Any] else {
            throw TraceError(file: file, "safetensors header is not a JSON object")
        }
        let bufferStart = 8 + n
        let bufferSize = storage.count - bufferStart
        var tensors: [String: Tensor] = [:]
        var spans: [(name: String, b: Int, e: Int)] = []
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw TraceError(file: file, "__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw TraceError(file: file, "__metadata__['\(k)'] is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any], let dtypeName = entry["dtype"] as? String,
                let shapeAny = entry["shape"] as? [Any], let offsAny = entry["data_offsets"] as? [Any], offsAny.count == 2
            else { throw TraceError(file: file, tensor: name, "header entry needs dtype, shape and data_offsets [begin, end]") }
            guard let dtype = Self.dtypes[dtypeName] else {
                throw TraceError(
                    file: file, tensor: name, "unsupported dtype \(dtypeName) (read: F16, BF16, F32, F64, I32, I64, BOOL, U8, I8, I16)")
            }
            let shape = try shapeAny.map { v -> Int in
                guard let d = Self.intValue(v), d >= 0 else {
                    throw TraceError(file: file, tensor: name, "shape entries must be non-negative integers")
                }
                return d
            }
            guard let b = Self.intValue(offsAny[0]), let e = Self.intValue(offsAny[1]) else {
                throw TraceError(file: file, tensor: name, "data_offsets must be integers")
            }
            guard 0 <= b, b <= e, e <= bufferSize else {
                throw TraceError(
                    file: file, tensor: name,
                    "data_offsets [\(b), \(e)] out of range of the \(bufferSize)-byte buffer\(e > bufferSize ? " (truncated file?)" : "")")
            }
            let bytes: Int
            do { bytes = try Checked.product(shape + [dtype.width], field: "shape", file: file) } catch let e as TraceError {
                throw e.within(tensor: name)
            }
            guard bytes == e - b else {
                throw TraceError(
                    file: file, tensor: name, "shape \(shape.shapeText) of \(dtypeName) needs \(bytes) bytes, data_offsets span \(e - b)")
            }
            tensors[name] = Tensor(dtype: dtype, shape: shape, storage: storage, offset: bufferStart + b)
            spans.append((name, b, e))
        }
        spans.sort { ($0.b, $0.e, $0.name) < ($1.b, $1.e, $1.name) }
        var warnings: [TraceWarning] = []
        var end = 0
        var gap = false
        var last: String?
        for s in spans where s.e > s.b {
            if s.b < end { throw TraceError(file: file, tensor: s.name, "data overlaps tensor '\(last ?? "")'") }
            if s.b > end { gap = true }
            end = s.e
            last = s.name
        }
        if gap { warnings.append(TraceWarning(file: file, kind: "gap", "gaps between tensors in the byte buffer")) }
        if end < bufferSize {
            warnings.append(TraceWarning(file: file, kind: "trailing", "\(bufferSize - end) trailing bytes after the last tensor"))
        }
        self.tensors = tensors
        self.names = spans.map(\.name)
        self.metadata = metadata
        self.warnings = warnings
    }

    static func intValue(_ v: Any) -> Int? {
        if let n = v as? NSNumber {
            let d = n.doubleValue
            guard d == d.rounded(), abs(d) < 9.0e18 else { return nil }
            return n.intValue
        }
        return v as? Int
    }
}

/// Finds a duplicated key inside any JSON object of a text (JSONSerialization keeps the last one silently).
enum JSONDuplicateKeys {
    static func first(in text: String) -> String? {
        let u = Array(text.utf8)
        var stack: [Set<String>?] = []  // nil for arrays
        var i = 0
        while i < u.count {
            let c = u[i]
            switch c {
            case UInt8(ascii: "{"): stack.append(Set()); i += 1
            case UInt8(ascii: "["): stack.append(nil); i += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"): if !stack.isEmpty { stack.removeLast() }; i += 1
            case UInt8(ascii: "\""):
                var j = i + 1
                while j < u.count, u[j] != UInt8(ascii: "\"") { j += u[j] == UInt8(ascii: "\\") ? 2 : 1 }
                let s = String(decoding: u[(i + 1) ..< min(j, u.count)], as: UTF8.self)
                i = j + 1
                var k = i
                while k < u.count, u[k] == 0x20 || u[k] == 0x0A || u[k] == 0x0D || u[k] == 0x09 { k += 1 }
                if k < u.count, u[k] == UInt8(ascii: ":"), let top = stack.last, var keys = top {
                    if keys.contains(s) { return s }
                    keys.insert(s)
                    stack[stack.count - 1] = keys
                }
            default: i += 1
            }
        }
        return nil
    }
}
