import Foundation
import KVTrace

/// Writes result rows as tidy CSV (header row, plain column names, no index column, numbers with
/// full precision, empty cells for missing values: `pd.read_csv(path)` loads it as is) and JSON.
public enum ResultWriter {
    /// The fixed CSV columns before the parameter columns, and after them.
    public static let leadingColumns = ["trace", "trace_hash", "policy", "base", "merge", "merge_scope", "params"]
    public static let trailingColumns = [
        "fidelity", "budget", "budget_spec", "hh_ratio", "recent_ratio", "recent_share", "tokens",
        "compression_point", "nominal_tokens", "actual_tokens", "kept_ratio", "metric",
        "all_layers", "layer", "head_index", "image", "step", "source", "target", "value", "eval_rows", "eval_row_count", "note",
    ]

    /// The parameter columns of `rows`: every parameter any row's policy declares, by name (snake
    /// case, sorted), prefixed `param_` where a name would shadow a fixed column.
    public static func parameterColumns(_ rows: [ResultRow]) -> [(name: String, column: String)] {
        let names = Set(rows.flatMap { $0.parameters.keys }).sorted()
        let fixed = Set(leadingColumns + trailingColumns)
        return names.map { n in
            let c = n.replacingOccurrences(of: "-", with: "_")
            return (n, fixed.contains(c) ? "param_" + c : c)
        }
    }

    public static func csv(_ rows: [ResultRow]) -> String { String(decoding: csvBytes(rows), as: UTF8.self) }

    /// `csv(rows)` as UTF-8 bytes, written into one buffer (a sweep writes tens of thousands of rows).
    public static func csvBytes(_ rows: [ResultRow]) -> [UInt8] {
        let pcols = parameterColumns(rows)
        var out: [UInt8] = []
        out.reserveCapacity(256 * (rows.count + 1))
        out += (leadingColumns + pcols.map(\.column) + trailingColumns).joined(separator: ",").utf8
        out.append(0x0A)
        func cell(_ s: String, first: Bool = false) {
            if !first { out.append(UInt8(ascii: ",")) }
            out += quote(s).utf8
        }
        func cell(_ i: Int?) {
            out.append(UInt8(ascii: ","))
            if let i { out += String(i).utf8 }
        }
        func cell(_ x: Double?) {
            out.append(UInt8(ascii: ","))
            out += num(x).utf8
        }
        for r in rows {
            cell(r.trace, first: true); cell(r.traceHash); cell(r.policy); cell(r.base); cell(r.merge); cell(r.mergeScope ?? "")
            cell(r.params)
            for c in pcols { cell(r.parameters[c.name]?.description ?? "") }
            cell(r.fidelity); cell(r.budget); cell(r.budgetSpec); cell(r.hhRatio); cell(r.recentRatio); cell(r.recentShare)
            cell(r.tokens)
            cell(r.compressionPoint); cell(r.nominalTokens); cell(r.actualTokens); cell(r.keptRatio); cell(r.metric)
            cell(r.allLayers ? "true" : "false"); cell(r.layer); cell(r.head); cell(r.image); cell(r.step)
            cell(r.source ?? ""); cell(r.target ?? ""); cell(r.value); cell(r.evalRows.rawValue); cell(r.evalRowCount)
            cell(r.note ?? "")
            out.append(0x0A)
        }
        return out
    }

    /// Shortest round-trip decimal (`0.1`, `1e-05`), empty for nil or non-finite.
    static func num(_ x: Double?) -> String {
        guard let x, x.isFinite else { return "" }
        return "\(x)"
    }

    static func quote(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 0x2C || $0 == 0x22 || $0 == 0x0A || $0 == 0x0D }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// `{"metadata": …, "rows": […]}` with sorted keys.
    /// (`JSONEncoder`'s bytes, pretty-printed with snake-case keys; the rows written by `RowJSON`.)
    public static func json(_ rows: [ResultRow], metadata: SweepMetadata) throws -> Data {
        try RowJSON.document(metadata: metadata, rows: rows)
    }
}

/// Run metadata written into `results.json`.
public struct SweepMetadata: Sendable, Codable {
    public struct TraceEntry: Sendable, Codable {
        public var path: String
        public var name: String
        public var hash: String
        public var compressionPoint: Int
        public var evalRows: String
        public init(path: String, name: String, hash: String, compressionPoint: Int, evalRows: String) {
            self.path = path; self.name = name; self.hash = hash; self.compressionPoint = compressionPoint; self.evalRows = evalRows
        }
    }
    public var kvscopeVersion: String
    public var commandLine: [String]
    public var traces: [TraceEntry]
    public var policies: [String]
    public var budgets: [String]
    public var fidelities: [String]
    public var metrics: [String]
    public var topK: Int
    public var proxyWindow: Int
    public var rowCount: Int

    public init(
        kvscopeVersion: String, commandLine: [String], traces: [TraceEntry], policies: [String], budgets: [String],
        fidelities: [String], metrics: [String], topK: Int, proxyWindow: Int, rowCount: Int
    ) {
        self.kvscopeVersion = kvscopeVersion; self.commandLine = commandLine; self.traces = traces; self.policies = policies
        self.budgets = budgets; self.fidelities = fidelities; self.metrics = metrics; self.topK = topK
        self.proxyWindow = proxyWindow; self.rowCount = rowCount
    }
}
