import Foundation

/// The summary table of a replay: one line per metric series (value over all layers, then the
/// first and last layer), then the notes of omitted metrics and the evaluation-row flag. Flow
/// rows (`merge_flow[text→image 0]`) are listed where their all-layers value is not 0.
///
/// `kvscope simulate --metrics` prints `SummaryTable.render(result)`.
public enum SummaryTable {
    public static func render(_ result: ReplayResult) -> String {
        let all = result.rows.filter { $0.layer == nil && $0.head == nil }
        let layers = result.info.recordedLayers
        var table: [[String]] = [["metric", "all layers", "layer \(layers.first ?? 0)", "layer \(layers.last ?? 0)"]]
        var notes: [String] = []
        for r in all where r.source == nil || r.value != 0 {
            let series = Series(r)
            let first = result.value(r.metric, layer: layers.first, image: r.image, source: r.source, target: r.target)
            let last = result.value(r.metric, layer: layers.last, image: r.image, source: r.source, target: r.target)
            table.append([series.name, series.format(r.value), series.format(first), series.format(last)])
            if r.value == nil, let n = r.note { notes.append("\(series.name) omitted: \(n)") }
        }
        var out = TextTable.lines(table, rightAligned: { $0 > 0 }).joined(separator: "\n") + "\n"
        let first = result.rows.first
        let kind = result.evalRows
        out += "evaluation rows: \(first?.evalRowCount ?? 0) \(kind.rawValue)"
        out += kind == .proxy ? " (the last prefill rows, which also fed the scores: a proxy)\n" : "\n"
        for n in notes { out += "note: \(n)\n" }
        return out
    }

    /// The table of a decoding replay: one line per step, one column per metric series (the value
    /// over all layers at that step; a flow metric one column per source → target pair that is not 0
    /// at some step), then the notes of omitted series.
    public static func renderSteps(_ result: ReplayResult) -> String {
        let all = result.rows.filter { $0.layer == nil && $0.head == nil && $0.step != nil }
        var series: [Series] = []
        for r in all where !series.contains(Series(r)) { series.append(Series(r)) }
        // Flow series are listed where some step's value is not 0, as in `render`.
        series.removeAll { s in s.source != nil && !all.contains { Series($0) == s && $0.value != 0 } }
        var table: [[String]] = [["step"] + series.map(\.name)]
        var notes: [String] = []
        for t in result.steps {
            var line = [String(t)]
            for s in series {
                let r = result.row(s.metric, image: s.image, source: s.source, target: s.target, step: t)
                line.append(s.format(r?.value))
                if r?.value == nil, let n = r?.note, !notes.contains(where: { $0.hasPrefix(s.name + " ") }) {
                    notes.append("\(s.name) omitted: \(n)")
                }
            }
            table.append(line)
        }
        var out = TextTable.lines(table, rightAligned: { _ in true }).joined(separator: "\n") + "\n"
        out +=
            "step t: row metrics over the generated rows P … P + t − 1, each against the cache it saw; sizes and retention of the cache at step t\n"
        for n in notes { out += "note: \(n)\n" }
        return out
    }

    /// One series of a replay's rows: a metric, and the image of a per-image metric or the
    /// source → target groups of a flow metric. Named `metric`, `metric[image]` or
    /// `metric[source→target]`.
    struct Series: Equatable {
        var metric: String
        var image: Int?
        var source: String?
        var target: String?

        init(_ r: ResultRow) { (metric, image, source, target) = (r.metric, r.image, r.source, r.target) }

        var name: String {
            var name = image.map { "\(metric)[\($0)]" } ?? metric
            if let source, let target { name += "[\(source)→\(target)]" }
            return name
        }

        /// A count (`kept_tokens`, `cache_bytes`, `merge_flow`) as a whole number when it is one,
        /// else one decimal; any other metric with 4 decimals; an omitted value as `—`.
        func format(_ v: Double?) -> String {
            guard let v else { return "—" }
            if metric == "kept_tokens" || metric == "cache_bytes" || metric == MergeFlow.id {
                return v == v.rounded() ? String(Int(v)) : String(format: "%.1f", v)
            }
            return String(format: "%.4f", v)
        }
    }
}
