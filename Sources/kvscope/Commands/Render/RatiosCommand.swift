import ArgumentParser
import Foundation
import KVPlot
import KVSimulator

/// `kvscope render ratios`: the ratio map of one policy and metric from an existing sweep.
struct RatiosCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample(
            "sweep Examples/traces/smollm2-layer3-bare.npz --prefill-len 161 --layer 3 --policies lookm --hh-ratio 0.05,0.1,0.2 --recent-ratio 0.05,0.1,0.2 -o Output/sweep-ratios",
            note: "first a sweep over a ratio grid (or kvscope explore)"),
        HelpExample(
            "render ratios Output/sweep-ratios/results.json --policy lookm --metric attention_recall --safe 'attention_recall>=0.95' -o Output/ratios-lookm.png"
        ),
    ]

    static let configuration = CommandConfiguration(
        commandName: "ratios",
        abstract: "A metric over hh × recent ratios for one policy, from a sweep's results.json (the map of `kvscope explore`).",
        discussion: """
            Reads the all-layers rows (mean over query heads and layers) of a sweep run with --hh-ratio and \
            --recent-ratio. Each cell shows the metric's value; dashed iso-lines give the actual kept ratio \
            (mean C_act / P); with --safe the cells that meet every condition are outlined and the cheapest \
            of them (smallest actual kept ratio, ties to the smaller hh ratio) is ringed; cells without a \
            value are hatched. When the file holds several traces, parameter settings or fidelities for the \
            policy, pick one with --trace, --params or --fidelity.
            """ + "\n\n" + HelpExample.section(examples)
    )

    @Argument(help: ArgumentHelp("A sweep's results.json (or its folder).", valueName: "results.json"))
    var results: String
    @Option(name: .customLong("policy"), help: "The policy label, as in the policy column (lookm, h2o+pivotal).")
    var policy: String
    @Option(name: .customLong("metric"), help: "Metric id, e.g. attention_recall, output_error, image_recall[1].")
    var metric: String = "attention_recall"
    @Option(
        name: .customLong("safe"),
        help: ArgumentHelp("A safety condition (repeatable), e.g. 'attention_recall>=0.95'.", valueName: "condition"),
        transform: { text in
            do { return try SafeCondition.parse(text) } catch { throw ValidationError("\(error)") }
        })
    var safe: [SafeCondition] = []
    @Flag(name: .customLong("per-layer"), help: "With --safe: every condition must hold in every layer.")
    var perLayer = false
    @Option(name: .customLong("trace"), help: "The trace name, when the file holds several.")
    var trace: String?
    @Option(
        name: .customLong("params"),
        help: ArgumentHelp("The params column value (k=v;…), when the policy ran with several.", valueName: "k=v;…"))
    var params: String?
    @Option(name: .customLong("fidelity"), help: "code or intended, when the file holds both.")
    var fidelity: String?
    @OptionGroup var output: RenderOutputOptions

    func run() throws {
        var url = URL(fileURLWithPath: results)
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue {
            url.appendPathComponent("results.json")
        }
        guard let data = FileManager.default.contents(atPath: url.path) else { throw CLIError("\(url.path): cannot read the file") }
        struct Doc: Decodable { var rows: [ResultRow] }
        let rows: [ResultRow]
        do { rows = try JSONDecoder().decode(Doc.self, from: data).rows } catch {
            throw CLIError("\(url.path): not a sweep's results.json (\(String(describing: error).split(separator: "\n").first ?? ""))")
        }
        let labels = Array(Set(rows.map(\.policy))).sorted()
        guard labels.contains(policy) else {
            throw CLIError("--policy: '\(policy)' is not in \(url.path) (present: \(labels.joined(separator: ", ")))")
        }
        let set = safe.isEmpty ? nil : SafeSet(rows.filter { $0.policy == policy }, conditions: safe, perLayer: perLayer)
        var grids = RatioGrid.grids(rows, policy: policy, metric: metric, safe: set)
        guard !grids.isEmpty else {
            throw CLIError(
                "\(url.path): no \(policy) rows with hh_ratio and recent_ratio (run the sweep with --hh-ratio and --recent-ratio)")
        }
        if let trace { grids = grids.filter { $0.trace == trace } }
        if let params { grids = grids.filter { $0.params == params } }
        if let fidelity { grids = grids.filter { $0.fidelity == fidelity } }
        guard grids.count == 1, let g = grids.first else {
            let all = RatioGrid.grids(rows, policy: policy, metric: metric)
            let list = all.map { "trace \($0.trace), params '\($0.params)', fidelity \($0.fidelity)" }.joined(separator: "; ")
            throw CLIError(
                grids.isEmpty
                    ? "--trace/--params/--fidelity: no \(policy) grid matches (present: \(list))"
                    : "\(url.path) holds \(grids.count) \(policy) grids: pick one with --trace, --params or --fidelity (\(list))")
        }
        guard
            g.values.contains(where: { $0 != nil }) || g.notes.contains(where: { $0 != "not run" && $0 != "\(metric) not in the results" })
        else {
            let present = Array(Set(rows.filter { $0.policy == policy }.map { r in r.image.map { "\(r.metric)[\($0)]" } ?? r.metric }))
                .sorted()
            throw CLIError("--metric: '\(metric)' is not in \(url.path) for \(policy) (present: \(present.joined(separator: ", ")))")
        }
        try output.write(Self.figure(g, safe: set).build(), defaultName: Self.fileName(g, among: [g]))
    }

    /// `ratios-<policy>-<metric>`, plus the trace, params or fidelity when `grids` differ in them.
    static func fileName(_ g: RatioGrid, among grids: [RatioGrid]) -> String {
        var parts = ["ratios", g.policy, g.metric]
        if Set(grids.map(\.trace)).count > 1 { parts.append(g.trace) }
        if Set(grids.map(\.params)).count > 1 { parts.append(g.params) }
        if Set(grids.map(\.fidelity)).count > 1 { parts.append(g.fidelity) }
        return RenderSupport.fileSafe(parts.joined(separator: "-"))
    }

    /// The ratio map of one grid, with the safe region and cheapest cell of `safe` when given.
    static func figure(_ g: RatioGrid, safe: SafeSet?) -> RatioMapFigure {
        var sub = [
            "\(g.trace), fidelity \(g.fidelity)" + (g.params.isEmpty ? "" : ", \(g.params)"),
            "cells: \(g.metric), mean over layers (uniform); dashed: actual kept ratio (mean C_act / P)",
        ]
        if let safe {
            if let c = g.cheapest {
                let i = c.row * g.hh.count + c.col
                sub.append(
                    "safe (outlined): \(safe.conditionsText); cheapest (ringed): hh \(Ticks.compact(g.hh[c.col])), recent \(Ticks.compact(g.recent[c.row])), kept \(String(format: "%.3f", g.kept[i] ?? .nan))"
                )
            } else if g.safe?.contains(true) == true {
                sub.append("safe (outlined): \(safe.conditionsText); the cheapest safe setting of \(g.policy) has other parameters")
            } else {
                sub.append("no setting is safe (\(safe.conditionsText))")
            }
        }
        let missing = g.notes.compactMap { $0 }
        if !missing.isEmpty {
            var reasons: [String] = []
            for n in missing where !reasons.contains(n) { reasons.append(n) }
            let first = reasons[0].count > 70 ? String(reasons[0].prefix(70)) + "…" : reasons[0]
            sub.append(
                "\(missing.count) cell(s) without a value (hatched): \(first)"
                    + (reasons.count > 1 ? " (+\(reasons.count - 1) more reasons)" : ""))
        }
        // The metric in words (the axis label up to its unit): "attention recall".
        let name = MetricLabel.of(g.metric).axis.components(separatedBy: " (").first ?? g.metric
        return RatioMapFigure(
            hh: g.hh, recent: g.recent, values: g.values, kept: g.kept, safe: g.safe,
            cheapest: g.cheapest.map { RatioMapFigure.Cell(row: $0.row, col: $0.col) },
            metric: name, title: "\(g.policy): \(name) over hh × recent ratios", subtitle: sub)
    }
}
