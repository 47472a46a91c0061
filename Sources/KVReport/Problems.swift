import KVSimulator

/// Something a reader of the report must know a table or figure lacks, with its reason.
public struct Problem: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        /// A metric omitted over all layers (its inputs are missing, or it is undefined).
        case missing
        /// A value that averages only some layers: the others had none.
        case partial
        /// A combination that ran but kept nothing of the prefix.
        case degenerate
        /// A combination the run asked for that has no rows (an interrupted or edited sweep).
        case absent
        /// A trace-level problem (not found, changed since the sweep).
        case trace
    }

    public var kind: Kind
    public var trace: String
    /// The metric series concerned, if one.
    public var series: String?
    public var reason: String
    /// The cells concerned (`h2o @ 0.2`), in table order.
    public var cells: [String]

    public init(kind: Kind, trace: String, series: String? = nil, reason: String, cells: [String] = []) {
        self.kind = kind; self.trace = trace; self.series = series; self.reason = reason; self.cells = cells
    }
}

extension Study {
    /// Missing, partial and degenerate cells of every trace, and the combinations `metadata` asked
    /// for that have no rows. Cells with the same kind, metric and reason are listed together.
    public func problems(expected metadata: SweepMetadata?) -> [Problem] {
        var out: [Problem] = []
        var index: [String: Int] = [:]
        func add(_ kind: Problem.Kind, _ t: TraceStudy, _ series: String?, _ reason: String, _ cell: String) {
            let key = [kind.rawValue, t.hash, series ?? "", reason].joined(separator: "\u{1F}")
            if let i = index[key] { out[i].cells.append(cell); return }
            index[key] = out.count
            out.append(Problem(kind: kind, trace: t.name, series: series, reason: reason, cells: [cell]))
        }
        for t in traces {
            for c in t.cells {
                let label = t.label(c)
                let measured = t.series.compactMap { s in c.values[s].map { (s, $0) } }
                let missing = measured.filter { $0.1.value == nil }
                let reasons = Set(missing.map { $0.1.note ?? $0.1.layerNote ?? "no value" })
                if !measured.isEmpty, missing.count == measured.count, reasons.count == 1 {
                    // The combination produced nothing: one line, not one per metric.
                    add(.missing, t, "every metric", reasons.first!, label)
                    continue
                }
                if c.value(SeriesID("kept_tokens")) == 0 || c.value(SeriesID("kept_ratio")) == 0 {
                    add(
                        .degenerate, t, nil,
                        "keeps no prefix token (C = \(c.nominalTokens), C_act = 0): every score measures an empty cache", label)
                }
                for (s, v) in measured {
                    if v.value == nil {
                        add(.missing, t, s.label, v.note ?? v.layerNote ?? "no value", label)
                    } else if v.isPartial {
                        add(
                            .partial, t, s.label,
                            "defined on \(v.layersDefined) of \(v.layers) layers; the others: \(v.layerNote ?? "no value")", label)
                    }
                }
            }
            if let m = metadata {
                let have = Set(t.cells.map { [$0.policy, $0.fidelity, $0.budgetSpec].joined(separator: "|") })
                for p in m.policies {
                    for f in m.fidelities {
                        for b in m.budgets where !have.contains([p, f, b].joined(separator: "|")) {
                            let setting = b.hasPrefix("fraction=") ? String(b.dropFirst(9).prefix { $0 != ";" }) : b
                            add(
                                .absent, t, nil, "asked for by the run but has no rows",
                                "\(p)\(m.fidelities.count > 1 ? " (\(f))" : "") @ \(setting)")
                        }
                    }
                }
            }
        }
        return out
    }
}
