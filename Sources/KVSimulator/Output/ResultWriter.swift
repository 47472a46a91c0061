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

    public static func csv(_ rows: [ResultRow]) -> String {
        let pcols = parameterColumns(rows)
        var out = (leadingColumns + pcols.map(\.column) + trailingColumns).joined(separator: ",") + "\n"
        for r in rows {
            var cells: [String] = [r.trace, r.traceHash, r.policy, r.base, r.merge, r.mergeScope ?? "", r.params]
            cells += pcols.map { r.parameters[$0.name]?.description ?? "" }
            cells += [
                r.fidelity, num(r.budget), r.budgetSpec, num(r.hhRatio), num(r.recentRatio), num(r.recentShare),
                r.tokens.map(String.init) ?? "",
                String(r.compressionPoint), String(r.nominalTokens), num(r.actualTokens), num(r.keptRatio), r.metric,
                r.allLayers ? "true" : "false", r.layer.map(String.init) ?? "", r.head.map(String.init) ?? "",
                r.image.map(String.init) ?? "",
                r.step.map(String.init) ?? "", r.source ?? "", r.target ?? "", num(r.value), r.evalRows.rawValue, String(r.evalRowCount),
                r.note ?? "",
            ]
            out += cells.map(quote).joined(separator: ",") + "\n"
        }
        return out
    }

    /// Shortest round-trip decimal (`0.1`, `1e-05`), empty for nil or non-finite.
    static func num(_ x: Double?) -> String {
        guard let x, x.isFinite else { return "" }
        return "\(x)"
    }

    static func quote(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// `{"metadata": …, "rows": […]}` with sorted keys.
    public static func json(_ rows: [ResultRow], metadata: SweepMetadata) throws -> Data {
        struct Doc: Encodable { var metadata: SweepMetadata; var rows: [ResultRow] }
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.keyEncodingStrategy = .convertToSnakeCase
        return try e.encode(Doc(metadata: metadata, rows: rows))
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
