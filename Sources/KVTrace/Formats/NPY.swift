import Foundation

/// Reader for numpy's `.npy` format, versions 1.0, 2.0 and 3.0 (docs/trace-format.md#npy).
///
/// The header is a Python dict literal with exactly `descr`, `fortran_order` and `shape`.
/// Object (pickled), structured, string and complex arrays and Fortran order are refused.
public enum NPY {
    /// Options that change how `descr` is read.
    public struct Options: Sendable {
        /// Read `<V2` / `|V2` / `<i2` arrays as bfloat16 (numpy saves bf16 from `ml_dtypes` that way).
        public var bf16: Bool
        public init(bf16: Bool = false) { self.bf16 = bf16 }
    }

    /// Reads a file, memory-mapped.
    public static func read(_ url: URL, options: Options = .init()) throws -> Tensor {
        try parse(ByteStorage.map(url), options: options)
    }

    /// Parses a complete `.npy` image held in `storage[start ..< end]` (`end` defaults to the
    /// storage's end); `name` replaces the storage's name in messages (an archive member).
    /// The data must fit before `end`; the element count and byte size are checked for overflow.
    public static func parse(
        _ storage: ByteStorage, at start: Int = 0, end: Int? = nil, name: String? = nil,
        options: Options = .init()
    ) throws -> Tensor {
        let name = name ?? storage.name
        let end = min(end ?? storage.count, storage.count)
        let header = try parseHeader(storage, at: start, end: end, name: name)
        let dtype = try decodeDescr(header.descr, options: options, file: name)
        guard !header.fortranOrder else {
            throw TraceError(file: name, "array is in Fortran order; save it with np.ascontiguousarray")
        }
        let bytes = try Checked.product(header.shape + [dtype.dtype.width], field: "npy shape", file: name)
        let available = end - header.dataOffset
        guard bytes <= available else {
            throw TraceError(
                file: name,
                "truncated: shape \(header.shape.shapeText) of \(dtype.dtype.rawValue) needs \(bytes) bytes, file has \(max(available, 0))")
        }
        return Tensor(
            dtype: dtype.dtype, shape: header.shape, storage: storage, offset: header.dataOffset,
            byteSwapped: dtype.bigEndian)
    }

    /// The longest npy header read (numpy's own `np.load` stops at 10 000 bytes).
    public static let maxHeaderBytes = 1 << 20

    struct Header {
        var descr: String
        var fortranOrder: Bool
        var shape: [Int]
        var dataOffset: Int
    }

    /// Reads only the header of an `.npy` image (used to size archive members before inflating).
    static func parseHeader(_ storage: ByteStorage, at start: Int, end: Int? = nil, name: String? = nil) throws -> Header {
        let name = name ?? storage.name
        let end = min(end ?? storage.count, storage.count)
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard start >= 0, end - start >= 10 else { throw TraceError(file: name, "truncated: shorter than an npy header") }
        for (i, m) in magic.enumerated() where storage.base.load(fromByteOffset: start + i, as: UInt8.self) != m {
            throw TraceError(file: name, "not an npy file (bad magic)")
        }
        let major = storage.base.load(fromByteOffset: start + 6, as: UInt8.self)
        let headerLen: Int
        let textStart: Int
        switch major {
        case 1:
            headerLen = Int(storage.loadLE(UInt16.self, at: start + 8))
            textStart = start + 10
        case 2, 3:
            guard end - start >= 12 else { throw TraceError(file: name, "truncated npy header") }
            headerLen = Int(storage.loadLE(UInt32.self, at: start + 8))
            textStart = start + 12
        default:
            throw TraceError(file: name, "unsupported npy version \(major) (expected 1, 2 or 3)")
        }
        guard headerLen <= maxHeaderBytes else {
            throw TraceError(file: name, "npy HEADER_LEN \(headerLen) is above the \(maxHeaderBytes)-byte limit")
        }
        guard textStart + headerLen <= end else {
            throw TraceError(file: name, "truncated: npy HEADER_LEN \(headerLen) runs past the end of the file")
        }
        let bytes = UnsafeRawBufferPointer(start: storage.base + textStart, count: headerLen)
        guard let text = String(bytes: bytes, encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw TraceError(file: name, "npy header is not valid text")
        }
        var parser = DictLiteralParser(text: text, file: name)
        let dict = try parser.parse()
        let keys = Set(dict.keys)
        guard keys == ["descr", "fortran_order", "shape"] else {
            throw TraceError(file: name, "npy header must have exactly descr, fortran_order, shape; found \(keys.sorted())")
        }
        guard case .string(let descr)? = dict["descr"] else {
            throw TraceError(file: name, "npy header: descr is not a string (structured arrays are not supported)")
        }
        guard case .bool(let fo)? = dict["fortran_order"] else {
            throw TraceError(file: name, "npy header: fortran_order is not True/False")
        }
        guard case .tuple(let shape)? = dict["shape"] else {
            throw TraceError(file: name, "npy header: shape is not a tuple of integers")
        }
        return Header(descr: descr, fortranOrder: fo, shape: shape, dataOffset: textStart + headerLen)
    }

    static func decodeDescr(_ descr: String, options: Options, file: String) throws -> (dtype: DType, bigEndian: Bool) {
        guard let order = descr.first, descr.count >= 2 else { throw TraceError(file: file, "npy dtype '\(descr)' is not understood") }
        let code = String(descr.dropFirst())
        let big = order == ">"
        if order != "<" && order != ">" && order != "|" && order != "=" {
            throw TraceError(file: file, "npy dtype '\(descr)' is not understood")
        }
        switch code {
        case "f2": return (.f16, big)
        case "f4": return (.f32, big)
        case "f8": return (.f64, big)
        case "i1": return (.i8, big)
        case "i2": return (options.bf16 ? .bf16 : .i16, big)
        case "i4": return (.i32, big)
        case "i8": return (.i64, big)
        case "u1": return (.u8, big)
        case "b1": return (.bool, big)
        case "V2" where options.bf16: return (.bf16, big)
        case "V2": throw TraceError(file: file, "npy dtype '\(descr)' is a 2-byte void; if it holds bfloat16, pass --dtype bf16")
        case "O": throw TraceError(file: file, "npy dtype 'object' holds pickled Python objects, which are refused; save a numeric array")
        default:
            if code.hasPrefix("c") { throw TraceError(file: file, "npy dtype '\(descr)' is complex, which is not supported") }
            if code.hasPrefix("U") || code.hasPrefix("S") {
                throw TraceError(file: file, "npy dtype '\(descr)' is a string type, which is not supported")
            }
            throw TraceError(file: file, "npy dtype '\(descr)' is not supported (expected f2, f4, f8, i4, i8, b1, u1, i2)")
        }
    }
}

/// A value of the npy header's Python literal subset.
enum PyLiteral: Equatable {
    case string(String), bool(Bool), tuple([Int])
}

/// Parses `{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }` and nothing more.
struct DictLiteralParser {
    let chars: [Character]
    var i = 0
    let file: String

    init(text: String, file: String) {
        self.chars = Array(text)
        self.file = file
    }

    func fail(_ what: String) -> TraceError { TraceError(file: file, "npy header is not a valid dict literal: \(what)") }

    mutating func skipSpace() { while i < chars.count, chars[i].isWhitespace { i += 1 } }

    mutating func expect(_ c: Character) throws {
        skipSpace()
        guard i < chars.count, chars[i] == c else { throw fail("expected '\(c)'") }
        i += 1
    }

    mutating func parseString() throws -> String {
        skipSpace()
        guard i < chars.count, chars[i] == "'" || chars[i] == "\"" else { throw fail("expected a quoted string") }
        let q = chars[i]
        i += 1
        var s = ""
        while i < chars.count, chars[i] != q { s.append(chars[i]); i += 1 }
        guard i < chars.count else { throw fail("unterminated string") }
        i += 1
        return s
    }

    mutating func parseValue() throws -> PyLiteral {
        skipSpace()
        guard i < chars.count else { throw fail("unexpected end") }
        if chars[i] == "'" || chars[i] == "\"" { return .string(try parseString()) }
        if chars[i] == "(" {
            i += 1
            var dims: [Int] = []
            while true {
                skipSpace()
                guard i < chars.count else { throw fail("unterminated tuple") }
                if chars[i] == ")" { i += 1; break }
                var digits = ""
                while i < chars.count, chars[i].isNumber { digits.append(chars[i]); i += 1 }
                if i < chars.count, chars[i] == "L" { i += 1 }
                guard let d = Int(digits) else { throw fail("shape entries must be non-negative integers") }
                dims.append(d)
                skipSpace()
                if i < chars.count, chars[i] == "," { i += 1 }
            }
            return .tuple(dims)
        }
        for (word, v) in [("True", true), ("False", false)] where chars[i...].starts(with: word) {
            i += word.count
            return .bool(v)
        }
        if chars[i] == "[" || chars[i] == "{" { return .string("\u{0}structured") }
        throw fail("unexpected '\(chars[i])'")
    }

    mutating func parse() throws -> [String: PyLiteral] {
        try expect("{")
        var out: [String: PyLiteral] = [:]
        while true {
            skipSpace()
            guard i < chars.count else { throw fail("unterminated dict") }
            if chars[i] == "}" { i += 1; break }
            let key = try parseString()
            try expect(":")
            let value = try parseValue()
            if case .string("\u{0}structured") = value { throw TraceError(file: file, "npy dtype is structured, which is not supported") }
            guard out[key] == nil else { throw fail("duplicate key '\(key)'") }
            out[key] = value
            skipSpace()
            if i < chars.count, chars[i] == "," { i += 1 }
        }
        skipSpace()
        guard i == chars.count else { throw fail("trailing characters after the dict") }
        return out
    }
}
