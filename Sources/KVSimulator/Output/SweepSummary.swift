import Foundation

/// What a sweep wrote, and which cells have no value and why: the end-of-sweep report.
public struct SweepSummary: Sendable, Codable {
    /// Cells (setting × metric, over all layers) without a value, grouped by setting and reason.
    public struct Missing: Sendable, Codable, Hashable {
        public var trace: String
        public var policy: String
        public var params: String
        public var budgetSpec: String
        public var fidelity: String
        public var metrics: [String]
        public var reason: String
        enum CodingKeys: String, CodingKey { case trace, policy, params, budgetSpec = "budget_spec", fidelity, metrics, reason }
    }
    public var rows: Int
    public var combinations: Int
    public var traces: Int
    public var csv: String
    public var json: String
    public var missing: [Missing]

    public init(_ rows: [ResultRow], combinations: Int, traces: Int, csv: String, json: String) {
        self.rows = rows.count
        self.combinations = combinations
        self.traces = traces
        self.csv = csv
        self.json = json
        var groups: [Missing] = []
        var index: [String: Int] = [:]
        // Metrics undefined by definition for a policy (output_error_evict of a merging one) are not missing.
        for r in rows where r.layer == nil && r.head == nil && r.value == nil && !(r.note ?? "").contains("undefined for merging policies")
        {
            let reason = r.note ?? "undefined"
            let key = [r.trace, r.policy, r.params, r.budgetSpec, r.fidelity, reason].joined(separator: "\u{1}")
            if let i = index[key] {
                if !groups[i].metrics.contains(r.metric) { groups[i].metrics.append(r.metric) }
            } else {
                index[key] = groups.count
                groups.append(
                    Missing(
                        trace: r.trace, policy: r.policy, params: r.params, budgetSpec: r.budgetSpec, fidelity: r.fidelity,
                        metrics: [r.metric], reason: reason))
            }
        }
        missing = groups
    }

    /// Lines for the terminal.
    public var text: String {
        var out = "wrote \(rows) rows (\(combinations) settings × \(traces) trace(s)) to \(csv) and results.json\n"
        if missing.isEmpty { return out + "every cell has a value\n" }
        out += "\(missing.reduce(0) { $0 + $1.metrics.count }) cell(s) without a value, in \(missing.count) group(s):\n"
        for m in missing.prefix(20) {
            let setting = [m.policy, m.params, m.budgetSpec, m.fidelity].filter { !$0.isEmpty }.joined(separator: " ")
            out += "  \(m.trace) \(setting): \(m.metrics.joined(separator: ", ")): \(m.reason)\n"
        }
        if missing.count > 20 { out += "  … and \(missing.count - 20) more groups (see the note column)\n" }
        return out
    }

    public func jsonText() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try e.encode(self), as: UTF8.self) + "\n"
    }
}
