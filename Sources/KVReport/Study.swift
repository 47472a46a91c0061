import Foundation
import KVPolicies
import KVSimulator

/// One metric series of a result table: `attention_recall`, `recall_image`, `image_retention[1]`.
public struct SeriesID: Sendable, Hashable, Comparable {
    public var metric: String
    public var image: Int?

    public init(_ metric: String, image: Int? = nil) { self.metric = metric; self.image = image }

    /// `metric` or `metric[image]`, as tables and result files name it.
    public var label: String { image.map { "\(metric)[\($0)]" } ?? metric }
    /// Which way is better, from the metric's declaration (`.neither` for unknown metrics).
    public var preference: MetricPreference { MetricCatalogue.metricType(of: metric)?.preference ?? .neither }
    /// The full cache's value by definition, or nil.
    public var fullCacheValue: Double? { MetricCatalogue.metricType(of: metric)?.fullCacheValue }

    public static func < (a: SeriesID, b: SeriesID) -> Bool { (a.metric, a.image ?? -1) < (b.metric, b.image ?? -1) }
}

/// A metric's value over all layers in one cell, with what the per-layer rows said.
public struct CellValue: Sendable, Hashable {
    /// The `layer = all` value; nil when omitted.
    public var value: Double?
    /// Why the `layer = all` value is omitted (its note).
    public var note: String?
    /// Per-layer rows seen (head `all`), and how many of them carry a value.
    public var layers = 0
    public var layersDefined = 0
    /// The first note of a per-layer row without a value.
    public var layerNote: String?

    public init(value: Double? = nil, note: String? = nil) { self.value = value; self.note = note }

    /// True when some but not all layers have a value: the `all` value averages fewer layers.
    public var isPartial: Bool { layersDefined > 0 && layersDefined < layers }
}

/// One combination on one trace: a policy with its parameters and fidelity at one budget or setting.
///
/// Its setting is the result row it was first seen in (`setting`); the setting columns read
/// through it by name (`cell.policy`, `cell.budget`, `cell.nominalTokens`, …, see `ResultRow`),
/// and `actualTokens` is that of the `layer = all` rows. The row's metric columns are not the
/// cell's: its values are in `values`.
@dynamicMemberLookup
public struct StudyCell: Sendable {
    public var setting: ResultRow
    public var values: [SeriesID: CellValue] = [:]

    public init(setting: ResultRow) { self.setting = setting }

    public subscript<T>(dynamicMember path: WritableKeyPath<ResultRow, T>) -> T {
        get { setting[keyPath: path] }
        set { setting[keyPath: path] = newValue }
    }

    /// The full cache and the oracle are drawn as references, never ranked.
    public var isReference: Bool { (setting.base == "full" || setting.base == "oracle") && setting.merge == "none" }
    /// The full cache itself.
    public var isFullCache: Bool { setting.base == "full" && setting.merge == "none" }

    /// The configuration that produced the cell: the registry id before any `+merge` of the label,
    /// the wrapped merge after it, and the recorded parameter values.
    public var configuration: PolicyConfiguration { PolicyConfiguration(label: setting.policy, parameters: setting.parameters) }

    /// The setting as a reader names it: `0.2` for a fraction budget, else the spec with `, `.
    public var settingLabel: String {
        if let b = setting.budget { return Format.number(b) }
        return setting.budgetSpec.replacingOccurrences(of: ";", with: ", ")
    }

    /// The value of `s` over all layers, or nil.
    public func value(_ s: SeriesID) -> Double? { values[s]?.value }
}

/// Everything one trace's rows say: its cells in result order and the series they measure.
public struct TraceStudy: Sendable {
    public var name: String
    public var hash: String
    public var compressionPoint: Int
    public var evalRows: EvaluationRows
    public var evalRowCount: Int
    public var cells: [StudyCell]
    /// Every series present, in the order the results list them.
    public var series: [SeriesID]

    /// The settings in table order: fraction budgets ascending, then other settings in result order.
    public var settings: [String] {
        var seen: [String: (Double?, Int)] = [:]
        for (i, c) in cells.enumerated() where seen[c.budgetSpec] == nil { seen[c.budgetSpec] = (c.budget, i) }
        return seen.sorted { a, b in
            (a.value.0 ?? .infinity, a.value.1) < (b.value.0 ?? .infinity, b.value.1)
        }.map(\.key)
    }

    /// The distinct fraction budgets, ascending.
    public var budgets: [Double] { Array(Set(cells.compactMap(\.budget))).sorted() }

    /// The fidelity modes present, in result order.
    public var fidelities: [String] {
        var out: [String] = []
        for c in cells where !out.contains(c.fidelity) { out.append(c.fidelity) }
        return out
    }

    /// A cell's name in lists: `h2o @ 0.2`, with the fidelity when several are present and the
    /// parameters when the policy appears with several.
    public func label(_ c: StudyCell) -> String {
        var name = c.policy
        if Set(cells.filter { $0.policy == c.policy }.map(\.params)).count > 1, !c.params.isEmpty { name += " [\(c.params)]" }
        if fidelities.count > 1 { name += " (\(c.fidelity))" }
        return "\(name) @ \(c.settingLabel)"
    }
}

/// A sweep's rows arranged by trace and combination.
///
/// Only the rows over all heads are used: the row over all layers gives a cell's value (as the
/// sweep aggregated it: mean over layers, a sum for `cache_bytes`), and the per-layer rows tell how
/// many layers had a value. Per-head rows (`--per-head`) are ignored.
public struct Study: Sendable {
    public var traces: [TraceStudy]

    public init(rows: [ResultRow]) {
        var order: [String] = []
        var byTrace: [String: [ResultRow]] = [:]
        for r in rows {
            if byTrace[r.traceHash] == nil { order.append(r.traceHash) }
            byTrace[r.traceHash, default: []].append(r)
        }
        traces = order.map { Self.trace(byTrace[$0]!) }
    }

    static func trace(_ rows: [ResultRow]) -> TraceStudy {
        var keys: [String] = []
        var cells: [String: StudyCell] = [:]
        var series: [SeriesID] = []
        var seen = Set<SeriesID>()
        // Flow rows (merge_flow, one per source → target) are matrices, not table cells.
        for r in rows where r.head == nil && r.source == nil {
            let k = r.combinationKey
            if cells[k] == nil {
                keys.append(k)
                cells[k] = StudyCell(setting: r)
            }
            let s = SeriesID(r.metric, image: r.image)
            if seen.insert(s).inserted { series.append(s) }
            var v = cells[k]!.values[s] ?? CellValue()
            if r.layer == nil {
                v.value = r.value.flatMap { $0.isFinite ? $0 : nil }
                v.note = v.value == nil ? (r.note ?? "no value") : nil
                cells[k]!.actualTokens = r.actualTokens
            } else {
                v.layers += 1
                if r.value?.isFinite == true { v.layersDefined += 1 } else if v.layerNote == nil { v.layerNote = r.note ?? "no value" }
            }
            cells[k]!.values[s] = v
        }
        let first = rows[0]
        return TraceStudy(
            name: first.trace, hash: first.traceHash, compressionPoint: first.compressionPoint, evalRows: first.evalRows,
            evalRowCount: first.evalRowCount, cells: keys.map { cells[$0]! }, series: series)
    }
}

/// Number formats shared by the report's tables.
public enum Format {
    /// Shortest decimal that reads back exactly for simple values (`0.2`, `1`), else 4 significant digits.
    public static func number(_ x: Double) -> String {
        if x == x.rounded(), abs(x) < 1e15 { return String(Int(x)) }
        let short = "\(x)"
        if short.count <= 6 { return short }
        return String(format: "%.4g", x)
    }

    /// A metric value for a table: sizes as integers (or one decimal), scores with 4 decimals.
    public static func value(_ x: Double, metric: String) -> String {
        switch metric {
        case "kept_tokens", "cache_bytes": return x == x.rounded() ? String(Int(x)) : String(format: "%.1f", x)
        default: return String(format: "%.4f", x)
        }
    }

    /// `12`, `12.5`.
    public static func tokens(_ x: Double) -> String {
        guard x.isFinite else { return "—" }
        return x == x.rounded() ? String(Int(x)) : String(format: "%.1f", x)
    }
}
