import Foundation
import KVTrace

/// Writes `data` to the file a flag names, atomically; a failure is one line naming the flag.
func writeOutput(_ data: Data, to path: String, flag: String) throws {
    do {
        try AtomicFile.write(data, to: URL(fileURLWithPath: path))
    } catch let e as TraceError {
        throw CLIError("\(flag) \(e.description)")
    }
}

/// `value` as every `--json` flag prints it: pretty-printed with sorted keys, and the non-finite
/// numbers JSON cannot hold as the strings `inf`, `-inf` and `nan`.
func jsonText(_ value: some Encodable) throws -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return String(decoding: try e.encode(value), as: UTF8.self)
}
