import Foundation

/// A small RFC 4180 CSV reader: quoted fields, doubled quotes, commas and newlines inside quotes,
/// CRLF or LF line ends, a UTF-8 BOM. Blank lines are skipped.
enum CSV {
    struct Error: Swift.Error, CustomStringConvertible {
        var description: String
    }

    static func parse(_ text: String) throws -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field = ""
        var quoted = false, wasQuoted = false
        var line = 1
        var it = Array(text.unicodeScalars)[...]
        if it.first == "\u{FEFF}" { it = it.dropFirst() }
        var i = it.startIndex
        func endField() { row.append(field); field = ""; wasQuoted = false }
        func endRow() {
            endField()
            if !(row.count == 1 && row[0].isEmpty) { rows.append(row) }
            row = []
        }
        while i < it.endIndex {
            let c = it[i]
            if quoted {
                if c == "\"" {
                    if i + 1 < it.endIndex, it[i + 1] == "\"" { field.unicodeScalars.append("\""); i += 1 } else { quoted = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
            } else {
                switch c {
                case "\"":
                    guard field.isEmpty, !wasQuoted else { throw Error(description: "line \(line): stray quote inside an unquoted field") }
                    quoted = true; wasQuoted = true
                case ",": endField()
                case "\r": if i + 1 < it.endIndex, it[i + 1] == "\n" { break } else { endRow(); line += 1 }
                case "\n": endRow(); line += 1
                default:
                    if wasQuoted { throw Error(description: "line \(line): text after a closing quote") }
                    field.unicodeScalars.append(c)
                }
            }
            i += 1
        }
        if quoted { throw Error(description: "line \(line): unterminated quoted field") }
        if !field.isEmpty || !row.isEmpty || wasQuoted { endRow() }
        return rows
    }
}

/// A sweep's `results.csv` (METRICS.md: one row per trace, policy, budget, metric, layer, head),
/// read by column name so that extra or reordered columns do not matter. Also reads the wide
/// layout (one column per metric).
struct ResultsTable {
    var header: [String]
    var rows: [[String]]

    init(text: String, file: String) throws {
        let all: [[String]]
        do { all = try CSV.parse(text) } catch { throw CLIError("\(file): \(error)") }
        guard let h = all.first else { throw CLIError("\(file): empty file (expected a results.csv header)") }
        header = h.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        rows = Array(all.dropFirst())
        if let bad = rows.firstIndex(where: { $0.count != header.count }) {
            throw CLIError("\(file): line \(bad + 2) has \(rows[bad].count) fields, the header has \(header.count)")
        }
    }

    func column(_ names: String...) -> Int? {
        for n in names { if let i = header.firstIndex(of: n) { return i } }
        return nil
    }

    /// The first number in a cell: "0.2", "fraction 0.2", "b=0.2".
    static func number(_ s: String) -> Double? {
        if let d = Double(s.trimmingCharacters(in: .whitespaces)) { return d }
        var start: String.Index?
        var end = s.endIndex
        for i in s.indices {
            let ch = s[i]
            let numeric = ch.isNumber || ch == "." || (ch == "-" && start == nil) || ((ch == "e" || ch == "E") && start != nil)
            if start == nil, ch.isNumber || ch == "." { start = i }
            else if start != nil, !numeric { end = i; break }
        }
        guard let start else { return nil }
        return Double(s[start ..< end])
    }

    /// One measured point of a curve, before averaging over traces.
    struct Point { var trace: String; var policy: String; var budget: Double; var y: Double; var x: Double? }

    /// The metric `metric` per (trace, policy, budget), averaged over layers (uniform weights;
    /// rows with layer "all" are used as they are when present), with the actual kept ratio when
    /// the table has it.
    func points(metric: String, file: String) throws -> (points: [Point], actualX: Bool) {
        guard let pc = column("policy", "policy_id") else { throw CLIError("\(file): no 'policy' column (columns: \(header.joined(separator: ", ")))") }
        guard let bc = column("budget", "budget_asked", "budget_requested", "budget_nominal", "nominal_budget") else {
            throw CLIError("\(file): no 'budget' column (columns: \(header.joined(separator: ", ")))")
        }
        let tc = column("trace_hash", "trace", "trace_name")
        let lc = column("layer")
        let hc = column("head_index", "head")
        let fc = column("fidelity")
        let mc = column("metric", "metric_id")
        let vc = column("value")
        let long = mc != nil && vc != nil
        if !long, column(metric) == nil { throw CLIError("\(file): no metric column or '\(metric)' column") }

        struct Key: Hashable { var trace: String; var policy: String; var budget: String }
        /// Values of `m` per key: the "all" rows, else the mean over per-layer rows (head "all" preferred).
        func collect(_ m: String) -> [Key: Double] {
            var allRows: [Key: [Double]] = [:], layerRows: [Key: [Double]] = [:], headRows: [Key: [Double]] = [:]
            for r in rows {
                let value: Double?
                if long {
                    guard r[mc!] == m else { continue }
                    value = Double(r[vc!].trimmingCharacters(in: .whitespaces))
                } else {
                    guard let c = column(m) else { return [:] }
                    value = Double(r[c].trimmingCharacters(in: .whitespaces))
                }
                guard let v = value, v.isFinite else { continue }
                var policy = r[pc]
                if let fc, Set(rows.map { $0[fc] }).count > 1 { policy += " (\(r[fc]))" }
                let k = Key(trace: tc.map { r[$0] } ?? "", policy: policy, budget: r[bc])
                let layer = lc.map { r[$0].lowercased() } ?? "all"
                let head = hc.map { r[$0].lowercased() } ?? "all"
                let headAll = head == "all" || head.isEmpty
                if layer == "all" || layer.isEmpty {
                    if headAll { allRows[k, default: []].append(v) }
                } else if headAll {
                    layerRows[k, default: []].append(v)
                } else {
                    headRows[k, default: []].append(v)
                }
            }
            var out: [Key: Double] = [:]
            for k in Set(allRows.keys).union(layerRows.keys).union(headRows.keys) {
                let vs = allRows[k] ?? layerRows[k] ?? headRows[k] ?? []
                if !vs.isEmpty { out[k] = vs.reduce(0, +) / Double(vs.count) }
            }
            return out
        }
        let ys = collect(metric)
        guard !ys.isEmpty else {
            let known = long ? Array(Set(rows.map { $0[mc!] })).sorted() : header
            throw CLIError("\(file): no values for metric '\(metric)' (metrics present: \(known.joined(separator: ", ")))")
        }
        let xs = collect("kept_ratio")
        var out: [Point] = []
        for (k, y) in ys {
            guard let b = Self.number(k.budget) else { throw CLIError("\(file): budget '\(k.budget)' is not a number") }
            out.append(Point(trace: k.trace, policy: k.policy, budget: b, y: y, x: xs[k]))
        }
        return (out, !xs.isEmpty && out.allSatisfy { $0.x != nil })
    }
}
