import ArgumentParser
import Foundation
import KVPlot

/// `kvscope render curves`: any metric versus budget from a sweep's results.
struct CurvesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curves",
        abstract: "A metric versus budget, one line per policy, from a sweep's results.json.",
        discussion: """
            Reads the sweep's results.json (give the file, the sweep folder, or its results.csv: the \
            results.json beside it is read). Values are averaged over layers (aggregate rows with layer 'all' \
            are used as they are). x is the actual kept ratio (mean C_act / P) unless --x nominal. Each policy \
            keeps its colour, dash and marker in every figure; the full cache is a dashed black reference line \
            (the swept 'full' policy's value, else the metric's own: recall 1, error 0). With several traces the \
            line is the mean and a band shows min–max.

            Example (first a sweep): kvscope sweep Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policies full,h2o,snapkv,lookm --budgets 0.1,0.2,0.5 --out Output/sweep

            Example: kvscope render curves Output/sweep --metric attention_recall -o Output/curves.png
            """
    )

    enum XAxis: String, ExpressibleByArgument, CaseIterable { case actual, nominal }

    @Argument(help: ArgumentHelp("A sweep's results.json, its folder, or its results.csv.", valueName: "results"))
    var results: String
    @Option(name: .customLong("metric"), help: "Metric id, e.g. attention_recall, output_error, recall_image (`kvscope sweep --help` lists them).")
    var metric: String = "attention_recall"
    @Option(name: .customLong("policies"), help: ArgumentHelp("Policies to draw, in this order (default: all, in file order).", valueName: "a,b,…"))
    var policies: ListArgument<String>?
    @Option(name: .customLong("x"), help: "x axis: the actual kept ratio, or the requested budget.")
    var x: XAxis = .actual
    @Flag(name: .customLong("log-x"), help: "Logarithmic x axis.")
    var logX = false
    @OptionGroup var output: RenderOutputOptions

    func run() throws {
        let sweep = try SweepResults.load(results)
        let points = try sweep.points(metric: metric)
        let label = MetricLabel.of(metric)
        let wanted = policies?.values
        // Legend order: the sweep's own policy order (first appearance in its rows).
        let present = Set(points.map(\.policy))
        var order: [String] = []
        let labels = sweep.seriesLabels()
        for r in sweep.rows { if let name = labels[r], present.contains(name), !order.contains(name) { order.append(name) } }
        if let wanted {
            for w in wanted where !order.contains(where: { $0 == w || $0.hasPrefix(w + " (") }) {
                throw CLIError("--policies: '\(w)' is not in \(sweep.file) (present: \(order.joined(separator: ", ")))")
            }
            order = wanted.flatMap { w in order.filter { $0 == w || $0.hasPrefix(w + " (") } }
        }
        // The full cache is the reference line, never a curve: as a curve it is one point at x = 1
        // that stretches the axis and, having no marker, draws nothing.
        let fullYs = points.filter { $0.policy == "full" || $0.policy.hasPrefix("full (") }.map(\.y)
        let reference = fullYs.isEmpty ? label.reference : fullYs.reduce(0, +) / Double(fullYs.count)
        order.removeAll { $0 == "full" || $0.hasPrefix("full (") }
        guard !order.isEmpty else { throw CLIError("\(sweep.file): no policy but full has '\(metric)' values to draw") }
        let traces = Set(points.map(\.trace))
        var curves: [Curve] = []
        for policy in order {
            let mine = points.filter { $0.policy == policy }
            let budgets = Array(Set(mine.map(\.budget))).sorted()
            var xs: [Double] = [], ys: [Double] = [], band: [ClosedRange<Double>] = []
            for b in budgets {
                let at = mine.filter { $0.budget == b }
                let y = at.map(\.y)
                xs.append(x == .actual ? at.map(\.x).reduce(0, +) / Double(at.count) : b)
                ys.append(y.reduce(0, +) / Double(y.count))
                band.append(y.min()! ... y.max()!)
            }
            let look = PolicyStyle.of(base: mine[0].base, merge: mine[0].merge)
            curves.append(Curve(policy: policy, style: look, label: policy, x: xs, y: ys, band: traces.count > 1 ? band : nil))
        }
        var sub = ["\(metric): mean over layers (uniform weights)" + (traces.count > 1 ? "; mean over \(traces.count) traces, band min–max" : "")]
        if !fullYs.isEmpty { sub.append("dashed black line: the full cache's value (\(RenderSupport.fmt3(reference ?? 0)))") }
        let xLabel = x == .actual ? "actual kept ratio (mean C_act / P)" : "requested budget (fraction, tokens or hh ratio)"
        let names = sweep.traces
        let who = names.count == 1 ? names[0] : "\(names.count) traces"
        let fig = CurvesFigure(
            curves: curves, metric: label.axis, xLabel: xLabel + (logX ? ", log" : ""),
            title: output.title("\(who): \(label.question)"), subtitle: sub,
            logX: logX, yRange: label.isFraction ? 0 ... 1 : nil, reference: reference,
            size: Size(curves.count > 8 ? 480 : 560, curves.count > 8 ? 420 : 320))
        try output.write(fig.build(), defaultName: "curves-\(names.first ?? "sweep")-\(metric)")
    }
}
