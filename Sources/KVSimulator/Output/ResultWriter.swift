import Foundation
import KVTrace

/// Writes result rows as tidy CSV (header row, plain column names, no index column, numbers with
/// full precision, empty cells for missing values: `pd.read_csv(path)` loads it as is) and JSON.
public enum ResultWriter {
    public static func csv(_ rows: [ResultRow]) -> String {
        var out = ResultRow.columns.joined(separator: ",") + "\n"
        for r in rows {
            let cells: [String] = [
                r.trace, r.traceHash, r.policy, r.params, r.fidelity, num(r.budget), r.budgetSpec, String(r.compressionPoint),
                String(r.nominalTokens), num(r.actualTokens), r.metric, r.layer, r.head, r.image.map(String.init) ?? "",
                num(r.value), r.evalRows.rawValue, String(r.evalRowCount), r.note ?? "",
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
        var clean = rows
        for i in clean.indices where !clean[i].actualTokens.isFinite { clean[i].actualTokens = 0 }
        return try e.encode(Doc(metadata: metadata, rows: clean))
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

    public init(kvscopeVersion: String, commandLine: [String], traces: [TraceEntry], policies: [String], budgets: [String],
                fidelities: [String], metrics: [String], topK: Int, proxyWindow: Int, rowCount: Int) {
        self.kvscopeVersion = kvscopeVersion; self.commandLine = commandLine; self.traces = traces; self.policies = policies
        self.budgets = budgets; self.fidelities = fidelities; self.metrics = metrics; self.topK = topK
        self.proxyWindow = proxyWindow; self.rowCount = rowCount
    }
}
