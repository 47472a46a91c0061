import KVPlot
import KVPolicies
import KVSimulator

extension TraceStudy {
    /// The series drawn as budget curves: every series with a better direction (recalls, errors,
    /// cosine), in result order.
    public var curveSeries: [SeriesID] { series.filter { $0.preference != .neither } }

    /// `s` versus the actual kept ratio (the `kept_ratio` value of each cell over all layers; the
    /// requested budget when some cell lacks it), one line per policy (with its parameters and
    /// fidelity when those vary), points in x order. When the metric has a full-cache value, the
    /// full cache is that reference line rather than a curve. Nil when no cell has a value.
    public func curvesFigure(_ s: SeriesID, notes: [String] = []) -> Figure? {
        let keptRatio = SeriesID("kept_ratio")
        let drawn = cells.filter { !($0.isFullCache && s.fullCacheValue != nil) && $0.value(s) != nil }
        let actual = !drawn.isEmpty && drawn.allSatisfy { $0.value(keptRatio) != nil }
        /// A cell's line: its label without the setting.
        func line(_ c: StudyCell) -> String {
            String(self.label(c).split(separator: "@").first ?? "").trimmingCharacters(in: .whitespaces)
        }
        var order: [String] = []
        var points: [String: [(x: Double, y: Double)]] = [:]
        var policyOf: [String: String] = [:], styleOf: [String: PolicyStyle] = [:]
        for c in drawn {
            guard let y = c.value(s), let x = actual ? c.value(keptRatio) : c.budget else { continue }
            let label = line(c)
            if points[label] == nil {
                order.append(label)
                policyOf[label] = c.policy
                styleOf[label] = .of(base: c.base, merge: c.merge)
            }
            points[label, default: []].append((x, y))
        }
        guard !order.isEmpty else { return nil }
        // Cells of a drawn policy without a value: marked on the x axis (at their kept ratio, else their budget).
        var missing: [String: [Double]] = [:]
        for c in cells where !c.isFullCache && c.value(s) == nil {
            let label = line(c)
            guard points[label] != nil, let x = (actual ? c.value(keptRatio) : nil) ?? c.budget else { continue }
            missing[label, default: []].append(x)
        }
        let curves = order.map { label -> Curve in
            let p = points[label]!.sorted { $0.x < $1.x }
            return Curve(
                policy: policyOf[label]!, style: styleOf[label], label: label, x: p.map(\.x), y: p.map(\.y),
                missing: Array(Set(missing[label] ?? [])).sorted())
        }
        let gaps = curves.reduce(0) { $0 + $1.missing.count }
        var sub = ["\(s.label) over all layers (mean, uniform weights) for each policy and budget"]
        if s.fullCacheValue != nil { sub.append("dashed black line: the full cache (\(Format.number(s.fullCacheValue!)) by definition)") }
        if !actual { sub.append("x: the requested budget (some cells have no kept_ratio)") }
        if gaps > 0 {
            sub.append("× on the x axis, in a policy's colour: a setting without a value (\(gaps); see Missing and degenerate cells)")
        }
        sub += notes
        let fraction = s.metric.hasSuffix("recall") || s.metric.hasPrefix("recall_")
        let n = curves.count
        return CurvesFigure(
            curves: curves, metric: s.label, xLabel: actual ? "kept ratio (mean C_act / P)" : "budget (requested fraction of P)",
            title: "\(name): \(s.label) vs \(actual ? "kept ratio" : "budget")", subtitle: sub,
            yRange: fraction ? 0 ... 1 : nil, reference: s.fullCacheValue,
            size: Size(n > 8 ? 480 : 520, (n > 8 ? 400 : 300) + Double(sub.count) * 10)
        ).build()
    }
}
