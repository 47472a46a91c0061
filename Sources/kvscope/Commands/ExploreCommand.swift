import ArgumentParser
import Foundation
import KVCairo
import KVPlot
import KVSimulator
import KVTrace

extension SafeCondition: ExpressibleByArgument {
    public init?(argument: String) {
        guard let c = try? SafeCondition.parse(argument) else { return nil }
        self = c
    }
}

/// `kvscope explore`: a ratio-grid sweep, then the safe settings, the cheapest of them, and the ratio maps.
struct ExploreCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample(
            "explore Examples/traces/smollm2-layer3-bare.npz --prefill-len 161 --layer 3 --policies lookm,h2o --hh-ratio 0.02,0.05,0.1,0.15,0.2,0.3 --recent-ratio 0.02,0.05,0.1,0.2,0.3 --safe 'attention_recall>=0.95' -o Output/explore",
            note: "a 6 × 5 grid on the one-layer bare arrays; a trace folder works the same")
    ]

    static let configuration = CommandConfiguration(
        commandName: "explore",
        abstract: "Sweep a grid of ratio settings and find the safe ones and the cheapest safe setting per policy.",
        discussion: """
            Runs the sweep of every setting of the grid (the options of `kvscope sweep`: --hh-ratio × \
            --recent-ratio, --param, --merge, --fidelity; the same atomic, resumable output in --out), then \
            keeps per trace and policy the settings that meet every --safe condition: on the all-layers value \
            (the uniform mean over layers), or with --per-layer in every layer. A missing value never meets a \
            condition. The cheapest safe setting has the smallest actual mean kept ratio (actual_tokens / P), \
            ties to the smaller hh ratio, then the smaller recent ratio.

            Writes, besides results.csv and results.json:
              OUT/safe.csv   per trace and policy every safe setting (its setting columns, the conditions' \
            metrics, actual_tokens, kept_ratio) with cheapest = true on the cheapest; a policy with no safe \
            setting gets one row saying so (that is a result: exit status 0)
              OUT/ratios-<policy>-<metric>.png (or --format svg): per policy and condition metric, the metric \
            over hh × recent, each cell annotated, iso-lines of the actual kept ratio, the safe region outlined, \
            the cheapest safe cell ringed, cells without a value hatched
            and prints per policy the cheapest safe setting with its kept ratio and metrics.

            A condition is METRIC>=X, METRIC<=X, METRIC>X or METRIC<X; a per-image metric takes the image id, \
            image_recall[1]>=0.9.

            With --shard i/n each process runs its slice of the cells into OUT/shards/i-of-n/; `kvscope collect \
            OUT` then writes results.csv, results.json and safe.csv byte-identical to a single-process explore, \
            and rerunning this explore with --resume reuses the shards (nothing recomputed) and draws the maps.
            """ + "\n\n" + HelpExample.section(examples)
    )

    enum FigureFormat: String, ExpressibleByArgument, CaseIterable { case png, svg, pdf }

    @OptionGroup var sweep: SweepCommand
    @Option(
        name: .customLong("safe"),
        help: ArgumentHelp(
            "A condition every safe setting meets, METRIC>=X / <=X / >X / <X (repeatable), e.g. --safe 'attention_recall>=0.95'.",
            valueName: "condition"),
        transform: { text in
            do { return try SafeCondition.parse(text) } catch { throw ValidationError("\(error)") }
        })
    var safe: [SafeCondition] = []
    @Flag(
        name: .customLong("per-layer"),
        help: "A setting is safe only when every condition holds in every layer (default: on the mean over layers).")
    var perLayer = false
    @Option(name: .customLong("format"), help: "Format of the ratio maps: png, svg or pdf.")
    var format: FigureFormat = .png

    func validate() throws {
        guard !safe.isEmpty else { throw ValidationError("--safe: give at least one condition, e.g. --safe 'attention_recall>=0.95'") }
        if sweep.decoding.replay != nil {
            throw ValidationError("--decoding: explore judges settings at one moment; replay through decoding with sweep or simulate")
        }
        guard sweep.out != nil else { throw ValidationError("--out: explore needs an output folder (-o DIR)") }
        guard sweep.grid.hhRatio != nil, sweep.grid.recentRatio != nil else {
            throw ValidationError("--hh-ratio: explore maps the hh × recent plane: give --hh-ratio and --recent-ratio lists")
        }
        let chosen = try sweep.chosenMetrics()
        for c in safe {
            let family: any Metric
            do { family = try MetricCatalogue.select([c.metric])[0] } catch {
                throw ValidationError("--safe '\(c)': unknown metric '\(c.metric)' (known: \(MetricCatalogue.ids.joined(separator: ", ")))")
            }
            guard chosen.contains(where: { type(of: $0).id == type(of: family).id }) else {
                throw ValidationError("--safe '\(c)': \(c.metric) is not among --metrics")
            }
        }
    }

    func run() throws {
        // One shard of a sharded explore: `kvscope collect` assembles the sweep and writes safe.csv;
        // rerunning this explore with --resume on that folder reuses the shards and draws the maps.
        let spec = SafeSpec(conditions: safe, perLayer: perLayer)
        guard let done = try sweep.execute(explore: spec) else { return }
        let set = spec.apply(done.rows)
        let safeURL = done.out.appendingPathComponent("safe.csv")
        try AtomicFile.write(Data(set.csv.utf8), to: safeURL)
        var written: [String] = []
        var labels: [String] = []
        for r in done.rows where !labels.contains(r.policy) { labels.append(r.policy) }
        var metrics: [String] = []
        for c in safe where !metrics.contains(c.metricLabel) { metrics.append(c.metricLabel) }
        for policy in labels {
            for metric in metrics {
                let grids = RatioGrid.grids(done.rows, policy: policy, metric: metric, safe: set)
                for g in grids {
                    let name = RatiosCommand.fileName(g, among: grids) + "." + format.rawValue
                    let url = done.out.appendingPathComponent(name)
                    try render(RatiosCommand.figure(g, safe: set).build(), to: url, format: OutputFormat(pathExtension: format.rawValue)!)
                    written.append(url.path)
                }
            }
        }
        if sweep.json {
            print(try jsonText(ExploreReport(sweep: done.summary, safe: set, safeCSV: safeURL.path, figures: written)))
            return
        }
        print(done.summary.text, terminator: "")
        print(set.table, terminator: "")
        print("wrote \(safeURL.path) and \(written.count) ratio map(s)" + (written.first.map { ", e.g. \($0)" } ?? ""))
    }
}

/// `explore --json`: the sweep summary, and per trace and policy the cheapest safe setting.
struct ExploreReport: Encodable {
    /// One trace and policy: how many of its settings are safe and, when one is, the cheapest
    /// (its keys beside the group's in one object; none of them when no setting is safe).
    struct Cheapest: Encodable {
        var group: Group
        var setting: Setting?

        struct Group: Encodable {
            var trace: String
            var policy: String
            var safeSettings: Int
            var settings: Int
            enum CodingKeys: String, CodingKey { case trace, policy, safeSettings = "safe_settings", settings }
        }

        /// The cheapest safe setting: its setting keys, kept ratio, and each condition's value.
        struct Setting: Encodable {
            var budgetSpec: String
            var params: String
            var fidelity: String
            var keptRatio: Double
            var values: [String: Double]
            enum CodingKeys: String, CodingKey { case budgetSpec = "budget_spec", params, fidelity, keptRatio = "kept_ratio", values }
        }

        func encode(to encoder: any Encoder) throws {
            try group.encode(to: encoder)
            try setting?.encode(to: encoder)
        }
    }
    var sweep: SweepSummary
    var conditions: [String]
    var perLayer: Bool
    var safeCSV: String
    var figures: [String]
    var cheapest: [Cheapest]

    init(sweep: SweepSummary, safe: SafeSet, safeCSV: String, figures: [String]) {
        self.sweep = sweep
        conditions = safe.conditions.map(\.description)
        perLayer = safe.perLayer
        self.safeCSV = safeCSV
        self.figures = figures
        cheapest = safe.cheapest.map { g, s in
            let group = Cheapest.Group(
                trace: g.trace, policy: g.policy, safeSettings: g.settings.filter(\.safe).count, settings: g.settings.count)
            return Cheapest(
                group: group,
                setting: s.map { s in
                    var values: [String: Double] = [:]
                    for (c, v) in zip(safe.conditions, s.values) { if let v { values[c.metricLabel] = v } }
                    return Cheapest.Setting(
                        budgetSpec: s.row.budgetSpec, params: s.row.params, fidelity: s.row.fidelity, keptRatio: s.keptRatio,
                        values: values)
                })
        }
    }

    enum CodingKeys: String, CodingKey {
        case sweep, conditions, perLayer = "per_layer", safeCSV = "safe_csv", figures, cheapest
    }
}
