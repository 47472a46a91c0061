/// Element types a trace may store. Raw values are the safetensors spellings.
public enum DType: String, Sendable, Hashable, Codable, CaseIterable {
    case f16 = "F16", bf16 = "BF16", f32 = "F32", f64 = "F64"
    case i8 = "I8", i16 = "I16", i32 = "I32", i64 = "I64", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var width: Int {
        switch self {
        case .f16, .bf16, .i16: 2
        case .f32, .i32: 4
        case .f64, .i64: 8
        case .i8, .u8, .bool: 1
        }
    }

    /// Floating-point types (attention, keys, values, queries).
    public var isFloat: Bool { self == .f16 || self == .bf16 || self == .f32 || self == .f64 }

    /// The numpy `descr` spelling, as written by the `.npy` writer.
    public var numpyDescr: String {
        switch self {
        case .f16: "<f2"
        case .bf16: "<V2"
        case .f32: "<f4"
        case .f64: "<f8"
        case .i8: "|i1"
        case .i16: "<i2"
        case .i32: "<i4"
        case .i64: "<i8"
        case .u8: "|u1"
        case .bool: "|b1"
        }
    }
}
