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
            var name = r.image.map { "\(r.metric)[\($0)]" } ?? r.metric
            if let s = r.source, let t = r.target { name += "[\(s)→\(t)]" }
            func fmt(_ v: Double?) -> String {
                guard let v else { return "—" }
                if r.metric == "kept_tokens" || r.metric == "cache_bytes" || r.metric == MergeFlow.id {
                    return v == v.rounded() ? String(Int(v)) : String(format: "%.1f", v)
                }
                return String(format: "%.4f", v)
            }
            let first = result.value(r.metric, layer: layers.first, image: r.image, source: r.source, target: r.target)
            let last = result.value(r.metric, layer: layers.last, image: r.image, source: r.source, target: r.target)
            table.append([name, fmt(r.value), fmt(first), fmt(last)])
            if r.value == nil, let n = r.note { notes.append("\(name) omitted: \(n)") }
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
    /// over all layers at that step), then the notes of omitted series.
    public static func renderSteps(_ result: ReplayResult) -> String {
        let all = result.rows.filter { $0.layer == nil && $0.head == nil && $0.step != nil }
        var series: [(metric: String, image: Int?)] = []
        for r in all where !series.contains(where: { $0.metric == r.metric && $0.image == r.image }) { series.append((r.metric, r.image)) }
        let names = series.map { s in s.image.map { "\(s.metric)[\($0)]" } ?? s.metric }
        var table: [[String]] = [["step"] + names]
        var notes: [String] = []
        for t in result.steps {
            var line = [String(t)]
            for (k, s) in series.enumerated() {
                let r = result.row(s.metric, image: s.image, step: t)
                if let v = r?.value {
                    line.append(
                        s.metric == "kept_tokens" || s.metric == "cache_bytes"
                            ? (v == v.rounded() ? String(Int(v)) : String(format: "%.1f", v)) : String(format: "%.4f", v))
                } else {
                    line.append("—")
                    if let n = r?.note, !notes.contains(where: { $0.hasPrefix(names[k] + " ") }) {
                        notes.append("\(names[k]) omitted: \(n)")
                    }
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
}
