import Foundation

/// A safety condition on one metric, such as `attention_recall>=0.95` or `output_error<=0.1`.
///
/// Text form: `METRIC OP THRESHOLD` with `OP` one of `>=`, `<=`, `>`, `<` (spaces allowed around
/// it). `METRIC` is a metric id of a result row (`attention_recall`, `recall_image`,
/// `kept_ratio`, …); a per-image metric takes its image id in brackets, `image_recall[1]`.
/// A cell whose value is missing (nil or NaN) never meets a condition.
public struct SafeCondition: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Comparison: String, Sendable, Hashable, Codable, CaseIterable {
        case atLeast = ">="
        case atMost = "<="
        case above = ">"
        case below = "<"

        /// Whether `v OP t` holds.
        public func holds(_ v: Double, _ t: Double) -> Bool {
            switch self {
            case .atLeast: v >= t
            case .atMost: v <= t
            case .above: v > t
            case .below: v < t
            }
        }

        /// True for `>=` and `>`: larger values are safer, so the worst layer is the smallest.
        public var higherIsSafer: Bool { self == .atLeast || self == .above }
    }

    public var metric: String
    /// The image of a per-image metric (`image_recall[1]`), else nil.
    public var image: Int?
    public var comparison: Comparison
    public var threshold: Double

    public init(metric: String, image: Int? = nil, _ comparison: Comparison, _ threshold: Double) {
        self.metric = metric
        self.image = image
        self.comparison = comparison
        self.threshold = threshold
    }

    /// Parses the text form; the error says what is wrong (without naming the flag).
    public static func parse(_ text: String) throws -> SafeCondition {
        let s = text.trimmingCharacters(in: .whitespaces)
        // Two-character operators first, so that `>=` is not read as `>`.
        guard let op = [Comparison.atLeast, .atMost, .above, .below].first(where: { s.contains($0.rawValue) }),
            let r = s.range(of: op.rawValue)
        else {
            throw SimulatorError("'\(text)' is not METRIC>=X, METRIC<=X, METRIC>X or METRIC<X (e.g. attention_recall>=0.95)")
        }
        var name = s[..<r.lowerBound].trimmingCharacters(in: .whitespaces)
        let rhs = s[r.upperBound...].trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty else { throw SimulatorError("'\(text)': no metric before \(op.rawValue)") }
        guard let t = Double(rhs), t.isFinite else { throw SimulatorError("'\(text)': '\(rhs)' is not a finite number") }
        var image: Int?
        if let open = name.firstIndex(of: "[") {
            guard name.hasSuffix("]"), let k = Int(name[name.index(after: open) ..< name.index(before: name.endIndex)]), k >= 0 else {
                throw SimulatorError("'\(text)': an image index is written metric[k] with k ≥ 0")
            }
            image = k
            name = String(name[..<open])
        }
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw SimulatorError("'\(text)': '\(name)' is not a metric id")
        }
        return SafeCondition(metric: name, image: image, op, t)
    }

    /// The metric as written, with its image: `image_recall[1]`.
    public var metricLabel: String { image.map { "\(metric)[\($0)]" } ?? metric }

    public var description: String { "\(metricLabel)\(comparison.rawValue)\(threshold)" }

    /// Whether `value` meets the condition (nil and NaN never do).
    public func holds(_ value: Double?) -> Bool {
        guard let v = value, v.isFinite else { return false }
        return comparison.holds(v, threshold)
    }

    /// Whether `row` carries this condition's metric (over all query heads).
    public func matches(_ row: ResultRow) -> Bool { row.metric == metric && row.image == image && row.source == nil && row.head == nil }
}

/// One evaluated setting of a sweep: its columns, its value on each condition, and whether it is safe.
public struct SafeSetting: Sendable, Hashable, Codable {
    /// A representative all-layers row of the setting (setting columns, `actualTokens`, `P`).
    public var row: ResultRow
    /// Per condition (in order): the all-layers value.
    public var values: [Double?]
    /// Per condition: the worst layer's value (smallest for `>=`/`>`, largest for `<=`/`<`), nil when no layer has one.
    public var worst: [Double?]
    /// Whether every condition holds (over all layers, or in every layer with `perLayer`).
    public var safe: Bool
    /// True on the cheapest safe setting of its trace and policy.
    public var cheapest: Bool
    /// Why the setting is not safe (the first failing condition, or a missing value's note).
    public var reason: String?

    /// The actual kept share of the prefill, mean over layers and KV heads (`actual_tokens / P`).
    public var keptRatio: Double { row.keptRatio }
}

/// The settings of one trace × policy, and which of them are safe.
public struct SafeGroup: Sendable, Hashable, Codable {
    public var trace: String
    public var policy: String
    /// Every setting, in sweep order.
    public var settings: [SafeSetting]
    /// The index in `settings` of the cheapest safe setting, nil when no setting is safe.
    public var cheapest: Int?
}

/// What makes a setting safe in `kvscope explore`: its `--safe` conditions and `--per-layer`. A
/// sharded explore records it in every shard, so `kvscope collect` writes the same `safe.csv`.
public struct SafeSpec: Sendable, Hashable, Codable {
    public var conditions: [SafeCondition]
    public var perLayer: Bool
    public init(conditions: [SafeCondition], perLayer: Bool) {
        self.conditions = conditions
        self.perLayer = perLayer
    }
    /// The safe set of `rows` (`SafeSet.init`).
    public func apply(_ rows: [ResultRow]) -> SafeSet { SafeSet(rows, conditions: conditions, perLayer: perLayer) }
}

/// The safe-set analysis of a sweep (`kvscope explore`): per trace and policy, the settings that
/// meet every condition and the cheapest of them.
///
/// - A setting is one combination (policy label, parameters, fidelity, budget) on one trace; its
///   rows are the result rows over all query heads of the conditions' metrics.
/// - Without `perLayer` a condition is tested on the all-layers value (the uniform mean over
///   layers); with it, on every layer's value (all must pass, so the worst layer decides).
/// - A missing value (the metric could not be computed) fails the condition, with its note as reason.
/// - Cheapest: the smallest actual mean kept ratio (`actual_tokens / P` of the all-layers rows);
///   ties go to the smaller `hh_ratio` (settings without one count as larger), then the smaller
///   `recent_ratio`, then sweep order.
/// - "No setting is safe" is a result: the group has `cheapest == nil` and `csv` writes a row saying so.
public struct SafeSet: Sendable, Hashable, Codable {
    public var conditions: [SafeCondition]
    public var perLayer: Bool
    public var groups: [SafeGroup]

    public init(_ rows: [ResultRow], conditions: [SafeCondition], perLayer: Bool) {
        self.conditions = conditions
        self.perLayer = perLayer
        var order: [String] = []
        var byKey: [String: [ResultRow]] = [:]
        for r in rows where r.head == nil {
            let k = r.trace + "\u{1}" + r.combinationKey
            if byKey[k] == nil { order.append(k) }
            byKey[k, default: []].append(r)
        }
        var groups: [SafeGroup] = []
        var groupIndex: [String: Int] = [:]
        for k in order {
            let rs = byKey[k]!
            guard let rep = rs.first(where: { $0.layer == nil }) ?? rs.first else { continue }
            var values: [Double?] = [], worst: [Double?] = []
            var safe = true
            var reason: String?
            for c in conditions {
                let all = rs.first { c.matches($0) && $0.layer == nil }
                let layers = rs.filter { c.matches($0) && $0.layer != nil }
                let finite = layers.compactMap(\.value).filter(\.isFinite)
                let w = c.comparison.higherIsSafer ? finite.min() : finite.max()
                values.append(all?.value)
                worst.append(w)
                let ok: Bool
                if perLayer {
                    ok = !layers.isEmpty && layers.allSatisfy { c.holds($0.value) }
                } else {
                    ok = c.holds(all?.value)
                }
                if !ok, safe {
                    safe = false
                    if all == nil && layers.isEmpty {
                        reason = "\(c.metricLabel) not in the results"
                    } else if let bad = (perLayer ? layers : [all].compactMap { $0 }).first(where: {
                        $0.value == nil || !$0.value!.isFinite
                    }) {
                        reason =
                            "\(c.metricLabel) missing" + (bad.layer.map { " on layer \($0)" } ?? "") + (bad.note.map { ": \($0)" } ?? "")
                    } else if perLayer, let bad = layers.first(where: { !c.holds($0.value) }) {
                        reason = "\(c.metricLabel) = \(bad.value!) on layer \(bad.layer!), needs \(c.comparison.rawValue) \(c.threshold)"
                    } else {
                        reason = "\(c.metricLabel) = \(all?.value ?? .nan), needs \(c.comparison.rawValue) \(c.threshold)"
                    }
                }
            }
            if !rep.actualTokens.isFinite, safe { safe = false; reason = "no actual kept count (the policy did not run)" }
            let setting = SafeSetting(row: rep, values: values, worst: worst, safe: safe, cheapest: false, reason: reason)
            let gk = rep.trace + "\u{1}" + rep.traceHash + "\u{1}" + rep.policy
            if let i = groupIndex[gk] {
                groups[i].settings.append(setting)
            } else {
                groupIndex[gk] = groups.count
                groups.append(SafeGroup(trace: rep.trace, policy: rep.policy, settings: [setting], cheapest: nil))
            }
        }
        for g in groups.indices {
            let best = groups[g].settings.indices.filter { groups[g].settings[$0].safe }.min { a, b in
                Self.cheaper(groups[g].settings[a], groups[g].settings[b])
            }
            groups[g].cheapest = best
            if let best { groups[g].settings[best].cheapest = true }
        }
        self.groups = groups
    }

    /// The order of "cheapest": kept ratio, then hh ratio, then recent ratio (nil last); equal → false.
    static func cheaper(_ a: SafeSetting, _ b: SafeSetting) -> Bool {
        func key(_ x: Double?) -> Double { x ?? .infinity }
        if a.keptRatio != b.keptRatio { return a.keptRatio < b.keptRatio }
        if key(a.row.hhRatio) != key(b.row.hhRatio) { return key(a.row.hhRatio) < key(b.row.hhRatio) }
        return key(a.row.recentRatio) < key(b.row.recentRatio)
    }

    /// The cheapest safe setting of each group (nil where none is safe), in group order.
    public var cheapest: [(group: SafeGroup, setting: SafeSetting?)] {
        groups.map { g in (g, g.cheapest.map { g.settings[$0] }) }
    }

    /// `safe.csv`: per trace and policy, every safe setting (sweep order), or one row saying no
    /// setting is safe. Columns: trace, policy, base, merge, params, one column per declared
    /// parameter, fidelity, budget, budget_spec, hh_ratio, recent_ratio, recent_share, tokens,
    /// compression_point, actual_tokens, kept_ratio, one column per condition metric (the all-layers
    /// value), with `perLayer` also `worst_<metric>` (the worst layer), then cheapest and note.
    public var csv: String {
        let reps = groups.flatMap { $0.settings.map(\.row) }
        let pcols = ResultWriter.parameterColumns(reps)
        var mcols: [String] = []
        for c in conditions {
            let name = c.metricLabel.replacingOccurrences(of: "[", with: "_").replacingOccurrences(of: "]", with: "")
            mcols.append(name)
            if perLayer { mcols.append("worst_" + name) }
        }
        var header = ["trace", "policy", "base", "merge", "params"] + pcols.map(\.column)
        header += [
            "fidelity", "budget", "budget_spec", "hh_ratio", "recent_ratio", "recent_share", "tokens",
            "compression_point", "actual_tokens", "kept_ratio",
        ]
        header += mcols + ["cheapest", "note"]
        var out = header.map(ResultWriter.quote).joined(separator: ",") + "\n"
        let num = ResultWriter.num
        for g in groups {
            let safe = g.settings.filter(\.safe)
            if safe.isEmpty {
                let rep = g.settings.first?.row
                var cells = [g.trace, g.policy, rep?.base ?? "", rep?.merge ?? "", ""] + pcols.map { _ in "" }
                cells += Array(repeating: "", count: 10) + mcols.map { _ in "" }
                let why = g.settings.compactMap(\.reason)
                let common = why.count == g.settings.count && Set(why).count == 1 ? ": \(why[0])" : ""
                cells += ["false", "no setting is safe (\(g.settings.count) tried, conditions \(conditionsText))\(common)"]
                out += cells.map(ResultWriter.quote).joined(separator: ",") + "\n"
                continue
            }
            for s in safe {
                let r = s.row
                var cells = [r.trace, r.policy, r.base, r.merge, r.params] + pcols.map { r.parameters[$0.name]?.description ?? "" }
                cells += [
                    r.fidelity, num(r.budget), r.budgetSpec, num(r.hhRatio), num(r.recentRatio), num(r.recentShare),
                    r.tokens.map(String.init) ?? "", String(r.compressionPoint), num(r.actualTokens), num(r.keptRatio),
                ]
                for (i, _) in conditions.enumerated() {
                    cells.append(num(s.values[i]))
                    if perLayer { cells.append(num(s.worst[i])) }
                }
                cells += [s.cheapest ? "true" : "false", ""]
                out += cells.map(ResultWriter.quote).joined(separator: ",") + "\n"
            }
        }
        return out
    }

    /// `attention_recall>=0.95 and output_error<=0.1` (plus ", in every layer" with `perLayer`).
    public var conditionsText: String {
        conditions.map(\.description).joined(separator: " and ") + (perLayer ? ", in every layer" : "")
    }

    /// The short stdout table: per trace and policy, the cheapest safe setting, its kept ratio and metrics.
    public var table: String {
        let multiTrace = Set(groups.map(\.trace)).count > 1
        var rows: [[String]] = [
            (multiTrace ? ["trace"] : []) + ["policy", "cheapest safe setting", "kept_ratio"] + conditions.map(\.metricLabel) + ["safe"]
        ]
        for g in groups {
            var cells = multiTrace ? [g.trace] : []
            let nSafe = g.settings.filter(\.safe).count
            if let i = g.cheapest {
                let s = g.settings[i]
                let r = s.row
                var setting = [r.budgetSpec.replacingOccurrences(of: ";", with: " ")]
                let defaults = r.params
                if !defaults.isEmpty { setting.append(defaults.replacingOccurrences(of: ";", with: " ")) }
                if r.fidelity != "code" { setting.append("fidelity=\(r.fidelity)") }
                cells += [g.policy, setting.joined(separator: " "), String(format: "%.3f", s.keptRatio)]
                cells += s.values.map { $0.map { String(format: "%.4f", $0) } ?? "—" }
            } else {
                cells += [g.policy, "no setting is safe", "—"] + conditions.map { _ in "—" }
            }
            cells.append("\(nSafe)/\(g.settings.count)")
            rows.append(cells)
        }
        var out = "cheapest safe settings (\(conditionsText)):\n"
        for line in TextTable.lines(rows) { out += "  " + line + "\n" }
        return out
    }
}
