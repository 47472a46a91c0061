import ArgumentParser
import Foundation
import KVPlot
import KVTrace

/// `kvscope render curves`: any metric versus budget from a sweep's results.
struct CurvesCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample(
            "sweep Examples/traces/smollm2-layer3-bare.npz --prefill-len 161 --layer 3 --policies full,h2o,snapkv,lookm --budgets 0.1,0.2,0.5 -o Output/sweep-curves",
            note: "first a sweep (here of the one-layer bare arrays)"),
        HelpExample("render curves Output/sweep-curves --metric attention_recall -o Output/curves.png"),
        HelpExample(
            "render curves Output/sweep-curves --metric attention_recall --match --prefill-len 161 --layer 3 -o Output/curves-match.png",
            note: "with the oracle at each policy's own kept counts (the bare arrays' mapping flags reopen the trace)"),
    ]

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

            --match adds, per policy, the oracle at that policy's own kept counts: for every setting the \
            policy is decided again on each layer and the oracle keeps exactly as many positions in every \
            (layer, KV head) as the policy did, so the bound sits at the policy's real budget (a text-prior \
            policy that keeps more than C is compared with an oracle that keeps as much). It is drawn in the \
            policy's colour and marker, sparse-dotted. The traces are read from the paths the sweep recorded \
            (or --trace, matched by content hash; bare arrays take their mapping flags); the evaluation rows \
            are the sweep's, the policy options other than the fidelity their defaults. The matched values are \
            also printed as a table (policy, budget position, kept ratio, the policy's value, the oracle's).
            """ + "\n\n" + HelpExample.section(examples)
    )

    enum XAxis: String, ExpressibleByArgument, CaseIterable { case actual, nominal }

    @Argument(help: ArgumentHelp("A sweep's results.json, its folder, or its results.csv.", valueName: "results"))
    var results: String
    @Option(
        name: .customLong("metric"),
        help: "Metric id, e.g. attention_recall, output_error, recall_image (`kvscope sweep --help` lists them).")
    var metric: String = "attention_recall"
    @Option(
        name: .customLong("policies"),
        help: ArgumentHelp("Policies to draw, in this order (default: all, in file order).", valueName: "a,b,…"))
    var policies: ListArgument<String>?
    @Option(name: .customLong("x"), help: "x axis: the actual kept ratio, or the requested budget.")
    var x: XAxis = .actual
    @Flag(name: .customLong("log-x"), help: "Logarithmic x axis.")
    var logX = false
    @Flag(
        name: .customLong("match"),
        help: ArgumentHelp(
            "Also draw, per policy, the oracle at that policy's actual kept count in every (layer, KV head): the bound at its real budget (replays the traces the sweep recorded, or --trace)."
        ))
    var match = false
    @Option(
        name: .customLong("trace"),
        help: ArgumentHelp(
            "With --match: a trace of the sweep, found by its content hash, when it has moved since the run (repeatable).",
            valueName: "path"))
    var traces: [String] = []
    @OptionGroup var mapping: MappingOptions
    @OptionGroup var output: RenderOutputOptions

    func validate() throws {
        if !traces.isEmpty && !match { throw ValidationError("--trace: only with --match (the curves themselves come from the results)") }
        if try mapping.mapping().isSet && !match { throw ValidationError("the mapping flags (--attn, --layer, …) apply with --match only") }
    }

    /// The sweep's traces by content hash: `--trace` paths, else the paths the sweep recorded.
    func sources(_ sweep: SweepResults) throws -> [String: any TraceSource] {
        let m = try mapping.mapping()
        let moved = try RenderSupport.tracesByHash(traces, mapping: m)
        var out: [String: any TraceSource] = moved.mapValues(\.source)
        let names = Dictionary(sweep.rows.map { ($0.traceHash, $0.trace) }, uniquingKeysWith: { a, _ in a })
        for (hash, name) in names.sorted(by: { $0.key < $1.key }) where out[hash] == nil {
            guard let path = sweep.metadata?.traces.first(where: { $0.hash == hash })?.path else {
                throw CLIError("--match: \(sweep.file) records no path for trace \(name); give it with --trace PATH")
            }
            let s: any TraceSource
            do { s = try TraceLoader.open(path, mapping: m) } catch {
                throw CLIError("--match: trace \(name) cannot be read at \(path) (\(error)); give its new place with --trace PATH")
            }
            guard s.info.contentHash == hash else {
                throw CLIError(
                    "--match: the trace at \(path) has changed since the run (content hash \(s.info.contentHash), the run's \(hash)); give the run's trace with --trace PATH"
                )
            }
            out[hash] = s
        }
        return out
    }

    func run() throws {
        let sweep = try SweepResults.load(results)
        let (points, missing) = try sweep.points(metric: metric)
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
            // Settings without a value: marked on the x axis, never dropped silently.
            let gaps = Set(missing.filter { $0.policy == policy }.map(\.x)).filter(\.isFinite).sorted()
            curves.append(
                Curve(policy: policy, style: look, label: policy, x: xs, y: ys, band: traces.count > 1 ? band : nil, missing: gaps))
        }
        var matchedCount = 0
        var table: [[String]] = [["policy", "position", "kept_ratio", "policy_value", "oracle_value"]]
        if match {
            let meta = sweep.metadata
            let matched = try MatchedOracle.values(
                metric: metric, sweep: sweep, sources: try sources(sweep),
                proxyWindow: meta?.proxyWindow ?? 32, topK: meta?.topK ?? 16)
            for c in curves where !(c.policy == "oracle" || c.policy.hasPrefix("oracle (")) {
                let mine = points.filter { $0.policy == c.policy }
                var xs: [Double] = [], ys: [Double] = []
                for (i, b) in Array(Set(mine.map(\.budget))).sorted().enumerated() {
                    let vs = mine.filter { $0.budget == b }.compactMap { p in
                        matched[MatchedOracle.Key(trace: p.traceHash, series: c.policy, position: b)]
                    }
                    guard !vs.isEmpty else { continue }
                    xs.append(c.x[i])
                    ys.append(vs.reduce(0, +) / Double(vs.count))
                    table.append([c.policy, "\(b)", "\(c.x[i])", "\(c.y[i])", "\(ys.last!)"])
                }
                guard !xs.isEmpty else { continue }
                curves.append(
                    Curve(
                        policy: "oracle@" + c.policy, style: .matchedOracle(of: c.style),
                        label: "oracle at \(c.policy)'s C_act", x: xs, y: ys))
                matchedCount += 1
            }
        }
        var sub = [
            "\(metric): mean over layers (uniform weights)" + (traces.count > 1 ? "; mean over \(traces.count) traces, band min–max" : "")
        ]
        if !fullYs.isEmpty { sub.append("dashed black line: the full cache's value (\(RenderSupport.fmt3(reference ?? 0)))") }
        let gapCount = curves.reduce(0) { $0 + $1.missing.count }
        if gapCount > 0 {
            sub.append(
                "× on the x axis, in a policy's colour: a setting with no value, at its kept ratio or (no decision) its budget (\(gapCount); the notes say why)"
            )
        }
        if matchedCount > 0 {
            sub.append("sparse-dotted, in a policy's colour: the oracle at that policy's own kept count per (layer, KV head)")
        }
        let xLabel = x == .actual ? "actual kept ratio (mean C_act / P)" : "requested budget (fraction, tokens or hh ratio)"
        let names = sweep.traces
        let who = names.count == 1 ? names[0] : "\(names.count) traces"
        let fig = CurvesFigure(
            curves: curves, metric: label.axis, xLabel: xLabel + (logX ? ", log" : ""),
            title: output.title("\(who): \(label.question)"), subtitle: sub,
            logX: logX, yRange: label.isFraction ? 0 ... 1 : nil, reference: reference,
            size: Size(curves.count > 8 ? 480 : 560, curves.count > 8 ? 420 : 320))
        try output.write(fig.build(), defaultName: "curves-\(names.first ?? "sweep")-\(metric)")
        if match {
            // The matched bounds as numbers: per policy and budget position, the policy's value and
            // the oracle's at the policy's own kept counts (means over layers, then traces).
            print("oracle at each policy's kept counts (\(metric), mean over layers):")
            RenderSupport.printTable(table)
        }
    }
}
