import ArgumentParser
import Foundation
import KVPlot

/// `kvscope render curves`: any metric versus budget from a sweep's results.csv (FIGURES.md §2.4).
struct CurvesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curves",
        abstract: "A metric versus budget, one line per policy, from a sweep's results.csv.",
        discussion: """
            Values are averaged over layers (rows with layer 'all' are used as they are). x is the actual \
            kept ratio (mean C_act / P, the kept_ratio metric) when the file has it, else the requested budget \
            (--x nominal forces that). Each policy keeps its colour, dash and marker in every figure; a dashed \
            black line marks the full cache (recall 1, error 0). With several traces the line is the mean and \
            a band shows min–max.

            Example: kvscope render curves Output/sweep/results.csv --metric attention_recall --policies h2o,snapkv,lookm
            """
    )

    enum XAxis: String, ExpressibleByArgument, CaseIterable { case actual, nominal }

    @Argument(help: ArgumentHelp("A sweep's results.csv.", valueName: "results.csv"))
    var results: String
    @Option(name: .customLong("metric"), help: "Metric id (METRICS.md), e.g. attention_recall, output_error, recall_image.")
    var metric: String = "attention_recall"
    @Option(name: .customLong("policies"), help: ArgumentHelp("Policies to draw, in this order (default: all, in file order).", valueName: "a,b,…"))
    var policies: String?
    @Option(name: .customLong("x"), help: "x axis: the actual kept ratio, or the requested budget.")
    var x: XAxis = .actual
    @Flag(name: .customLong("log-x"), help: "Logarithmic x axis.")
    var logX = false
    @OptionGroup var output: RenderOutputOptions

    /// The full-cache value of a metric, when it has one.
    static func reference(_ metric: String) -> Double? {
        if metric.hasSuffix("recall") || metric.hasPrefix("recall_") || metric == "output_cosine" { return 1 }
        if metric.hasPrefix("output_error") { return 0 }
        return nil
    }

    static func isFraction(_ metric: String) -> Bool {
        metric.hasSuffix("recall") || metric.hasPrefix("recall_") || metric == "kept_ratio" || metric.hasPrefix("image_retention")
    }

    func run() throws {
        let url = URL(fileURLWithPath: results)
        guard let data = FileManager.default.contents(atPath: url.path) else { throw CLIError("\(results): cannot read the file") }
        guard let text = String(data: data, encoding: .utf8) else { throw CLIError("\(results): not UTF-8 text") }
        let table = try ResultsTable(text: text, file: results)
        let (points, actual) = try table.points(metric: metric, file: results)
        let useActual = x == .actual && actual
        let wanted = policies?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var order: [String] = []
        for p in points.sorted(by: { ($0.policy, $0.budget) < ($1.policy, $1.budget) }) where !order.contains(p.policy) { order.append(p.policy) }
        if let wanted {
            for w in wanted where !order.contains(where: { $0 == w || $0.hasPrefix(w + " (") }) {
                throw CLIError("--policies: '\(w)' is not in \(results) (present: \(order.joined(separator: ", ")))")
            }
            order = wanted.flatMap { w in order.filter { $0 == w || $0.hasPrefix(w + " (") } }
        }
        let ref = Self.reference(metric)
        if ref != nil, wanted == nil { order.removeAll { $0 == "full" } }
        let traces = Set(points.map(\.trace))
        var curves: [Curve] = []
        for policy in order {
            let mine = points.filter { $0.policy == policy }
            let budgets = Array(Set(mine.map(\.budget))).sorted()
            var xs: [Double] = [], ys: [Double] = [], band: [ClosedRange<Double>] = []
            for b in budgets {
                let at = mine.filter { $0.budget == b }
                let y = at.map(\.y)
                xs.append(useActual ? at.compactMap(\.x).reduce(0, +) / Double(at.count) : b)
                ys.append(y.reduce(0, +) / Double(y.count))
                band.append(y.min()! ... y.max()!)
            }
            let id = policy.split(separator: " ").first.map(String.init) ?? policy
            curves.append(Curve(policy: id, label: policy, x: xs, y: ys, band: traces.count > 1 ? band : nil))
        }
        var sub = ["\(metric), mean over layers (uniform weights)" + (traces.count > 1 ? "; mean over \(traces.count) traces, band min–max" : "")]
        if x == .actual && !actual { sub.append("x: requested budget (the file has no kept_ratio)") }
        let xLabel = useActual ? "kept ratio (mean C_act / P)" : "budget (requested fraction of P)"
        let name = URL(fileURLWithPath: results).deletingLastPathComponent().lastPathComponent
        let fig = CurvesFigure(
            curves: curves, metric: metric, xLabel: xLabel + (logX ? ", log" : ""),
            title: output.title("\(metric) vs budget" + (name.isEmpty ? "" : " (\(name))")), subtitle: sub,
            logX: logX, yRange: Self.isFraction(metric) ? 0 ... 1 : nil, reference: ref,
            size: Size(curves.count > 8 ? 480 : 560, curves.count > 8 ? 420 : 320))
        try output.write(fig.build(), defaultName: "curves-\(name)-\(metric)")
    }
}
