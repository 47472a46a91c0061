import Foundation
import KVPolicies

/// Result rows as JSON text, written directly into a byte buffer: the bytes `JSONEncoder` makes of
/// `[ResultRow]` (with `.sortedKeys`, and `.prettyPrinted` when asked), at a small fraction of its
/// cost. A sweep's rows (tens of thousands) are written once per layer part and once into
/// `results.json`, and the generic encoder, which builds a tree of boxed values first, took most of
/// the sweep's serial tail. `RowJSONTests` checks the bytes against `JSONEncoder` on rows that set
/// every field, every parameter kind, non-finite values and strings that need escapes.
///
/// The format, as `JSONEncoder` writes it: keys in code-point order; an optional field that is nil
/// is left out (`actual_tokens` is `null` when not finite); a `Double` is its shortest round-trip
/// text with a trailing `.0` dropped (`1`, `0.1`, `1e-07`, `1e+16`); strings escape `"`, `\`, `/`,
/// `\b \f \n \r \t` and other controls below U+0020 as `\u00xx`. Pretty form: two spaces an
/// indent level, `"key" : value`, an empty object or array as an opening line, an empty line and
/// the closing bracket.
public enum RowJSON {
    /// `rows` as a JSON array; `depth` is the nesting level of the array itself (pretty form only).
    public static func array(_ rows: [ResultRow], pretty: Bool, depth: Int = 0) -> [UInt8] {
        var w = Writer(pretty: pretty)
        w.out.reserveCapacity(rows.count * (pretty ? 900 : 600))
        w.array(rows.count, depth: depth) { w, i, d in w.row(rows[i], depth: d) }
        return w.out
    }

    /// Arrays of rows as one JSON array of arrays (compact), as `JSONEncoder` writes `[[ResultRow]]`.
    public static func arrays(_ groups: [[ResultRow]]) -> [UInt8] {
        var w = Writer(pretty: false)
        w.array(groups.count, depth: 0) { w, g, d in w.array(groups[g].count, depth: d) { w, i, d in w.row(groups[g][i], depth: d) } }
        return w.out
    }

    /// `{"metadata": …, "rows": […]}` as `JSONEncoder` writes it pretty-printed with sorted keys and
    /// snake-case keys: the metadata by `JSONEncoder`, the rows by this writer.
    public static func document(metadata: SweepMetadata, rows: [ResultRow]) throws -> Data {
        struct Head: Encodable { var metadata: SweepMetadata; var rows: [Int] }
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.keyEncodingStrategy = .convertToSnakeCase
        var head = [UInt8](try e.encode(Head(metadata: metadata, rows: [])))
        let empty = Array("[\n\n  ]\n}".utf8)
        guard !rows.isEmpty, head.count >= empty.count, Array(head.suffix(empty.count)) == empty else { return Data(head) }
        head.removeLast(empty.count)
        head += array(rows, pretty: true, depth: 1)
        head += Array("\n}".utf8)
        return Data(head)
    }

    struct Writer {
        let pretty: Bool
        var out: [UInt8] = []

        mutating func raw(_ s: StaticString) {
            s.withUTF8Buffer { out.append(contentsOf: $0) }
        }

        mutating func newline(_ depth: Int) {
            guard pretty else { return }
            out.append(0x0A)
            for _ in 0 ..< depth { out.append(0x20); out.append(0x20) }
        }

        /// `[e0, e1, …]` with `element(&writer, i, depth)` writing element `i` at nesting `depth`.
        mutating func array(_ n: Int, depth: Int, _ element: (inout Writer, Int, Int) -> Void) {
            out.append(UInt8(ascii: "["))
            if n == 0 && pretty { newline(0) }
            for i in 0 ..< n {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(depth + 1)
                element(&self, i, depth + 1)
            }
            newline(depth)
            out.append(UInt8(ascii: "]"))
        }

        /// The key of an object's next field (with the comma before it unless `first`, which it clears).
        mutating func key(_ k: String, depth: Int, first: inout Bool) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            newline(depth + 1)
            string(k)
            if pretty { raw(" : ") } else { out.append(UInt8(ascii: ":")) }
        }

        mutating func string(_ s: String) {
            out.append(UInt8(ascii: "\""))
            for b in s.utf8 {
                switch b {
                case UInt8(ascii: "\""): raw("\\\"")
                case UInt8(ascii: "\\"): raw("\\\\")
                case UInt8(ascii: "/"): raw("\\/")
                case 0x08: raw("\\b")
                case 0x0C: raw("\\f")
                case 0x0A: raw("\\n")
                case 0x0D: raw("\\r")
                case 0x09: raw("\\t")
                case 0 ..< 0x20:
                    raw("\\u00")
                    let hex = Array("0123456789abcdef".utf8)
                    out.append(hex[Int(b >> 4)]); out.append(hex[Int(b & 15)])
                default: out.append(b)
                }
            }
            out.append(UInt8(ascii: "\""))
        }

        mutating func number(_ x: Double) {
            guard x.isFinite else { raw("null"); return }
            var s = x.description
            if s.hasSuffix(".0") { s.removeLast(2) }
            out.append(contentsOf: s.utf8)
        }

        mutating func number(_ i: Int) { out.append(contentsOf: String(i).utf8) }

        mutating func parameter(_ v: ParameterValue, depth: Int) {
            switch v {
            case let .integer(i): number(i)
            case let .real(x): number(x)
            case let .choice(s): string(s)
            case let .integers(a): array(a.count, depth: depth) { w, i, _ in w.number(a[i]) }
            }
        }

        /// One row, its fields in code-point order of their keys (`ResultRow.CodingKeys`).
        mutating func row(_ r: ResultRow, depth: Int) {
            out.append(UInt8(ascii: "{"))
            var first = true
            key("actual_tokens", depth: depth, first: &first); number(r.actualTokens)
            key("base", depth: depth, first: &first); string(r.base)
            if let b = r.budget { key("budget", depth: depth, first: &first); number(b) }
            key("budget_spec", depth: depth, first: &first); string(r.budgetSpec)
            key("compression_point", depth: depth, first: &first); number(r.compressionPoint)
            key("eval_row_count", depth: depth, first: &first); number(r.evalRowCount)
            key("eval_rows", depth: depth, first: &first); string(r.evalRows.rawValue)
            key("fidelity", depth: depth, first: &first); string(r.fidelity)
            if let h = r.head { key("head", depth: depth, first: &first); number(h) }
            if let x = r.hhRatio { key("hh_ratio", depth: depth, first: &first); number(x) }
            if let i = r.image { key("image", depth: depth, first: &first); number(i) }
            if let l = r.layer { key("layer", depth: depth, first: &first); number(l) }
            key("merge", depth: depth, first: &first); string(r.merge)
            if let s = r.mergeScope { key("merge_scope", depth: depth, first: &first); string(s) }
            key("metric", depth: depth, first: &first); string(r.metric)
            key("nominal_tokens", depth: depth, first: &first); number(r.nominalTokens)
            if let n = r.note { key("note", depth: depth, first: &first); string(n) }
            key("parameters", depth: depth, first: &first)
            let names = r.parameters.keys.sorted()
            out.append(UInt8(ascii: "{"))
            if names.isEmpty && pretty { newline(0) }
            var firstParameter = true
            for n in names {
                key(n, depth: depth + 1, first: &firstParameter)
                parameter(r.parameters[n]!, depth: depth + 2)
            }
            newline(depth + 1)
            out.append(UInt8(ascii: "}"))
            key("params", depth: depth, first: &first); string(r.params)
            key("policy", depth: depth, first: &first); string(r.policy)
            if let x = r.recentRatio { key("recent_ratio", depth: depth, first: &first); number(x) }
            if let x = r.recentShare { key("recent_share", depth: depth, first: &first); number(x) }
            if let s = r.source { key("source", depth: depth, first: &first); string(s) }
            if let s = r.step { key("step", depth: depth, first: &first); number(s) }
            if let t = r.target { key("target", depth: depth, first: &first); string(t) }
            if let n = r.tokens { key("tokens", depth: depth, first: &first); number(n) }
            key("trace", depth: depth, first: &first); string(r.trace)
            key("trace_hash", depth: depth, first: &first); string(r.traceHash)
            if let v = r.value { key("value", depth: depth, first: &first); number(v) }
            newline(depth)
            out.append(UInt8(ascii: "}"))
        }
    }
}
