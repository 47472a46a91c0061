import ArgumentParser
import Foundation
import KVPlot
import KVPolicies
import KVSimulator
import KVTrace

/// `kvscope render merge-flow`: where each group's evicted K/V went (the `merge_flow` metric).
struct MergeFlowCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample(
            "render merge-flow Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policies lookm,pivot-merge --budget 0.2 --layers 0-7 -o Output/merge-flow.png"
        ),
        HelpExample(
            "render merge-flow Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policies lookm --merge-scope all,modality,image --weight tokens --layers 0-7 -o Output/merge-flow-scopes.png",
            note: "one panel per merge scope, counting tokens"),
    ]

    static let configuration = CommandConfiguration(
        commandName: "merge-flow",
        abstract:
            "Merge flow: per merging policy, a matrix of where the evicted tokens of text and of each image were merged (or dropped).",
        discussion: """
            Rows are the groups of the evicted tokens (text, image 0, image 1, …), columns the group of \
            the kept token each one was merged into, plus dropped (merged nowhere). Each policy is replayed \
            at the end of prefill, and the merge_flow metric (docs/metrics.md) is averaged over KV heads and \
            the chosen layers. --weight attention (default) weighs each token by the attention the \
            evaluation rows give it (merge_flow_attention), --weight tokens counts tokens (merge_flow). \
            A cell is the share of its row's total (0–100 %); the row total is written on its right: the \
            share of the rows' attention those tokens received, or the mean count per KV head and layer.

            --merge-scope all,modality draws each merging policy once per scope (lookm, lookm+scope=modality).
            """ + "\n\n" + HelpExample.section(examples)
    )

    /// What a flow is weighted by.
    enum Weight: String, ExpressibleByArgument, CaseIterable {
        case attention, tokens
        var metric: String { self == .attention ? MergeFlow.attentionID : MergeFlow.id }
    }

    /// A row total of attention shares: `3.1%`, `<0.1%`, `0`.
    @Sendable static func percent(_ x: Double) -> String {
        if x == 0 { return "0" }
        return x < 0.001 ? "<0.1%" : String(format: "%.1f%%", x * 100)
    }

    /// A row total of token counts: `576`, `12.5`.
    @Sendable static func count(_ x: Double) -> String {
        abs(x - x.rounded()) < 0.05 ? String(Int(x.rounded())) : String(format: "%.1f", x)
    }

    @OptionGroup var trace: TraceOptions
    @OptionGroup var policy: RenderPolicyOptions
    @Option(
        name: .customLong("weight"), help: "attention: weigh tokens by the attention the evaluation rows give them; tokens: count them.")
    var weight: Weight = .attention
    @OptionGroup var layers: LayerOptions
    @OptionGroup var output: RenderOutputOptions

    func validate() throws {
        let ids = try policy.ids(required: true)
        for id in ids where !(PolicyRegistry.declaration(id)?.traits.contains(.merges) ?? false) {
            throw ValidationError(
                "--policies: '\(id)' does not merge; merge flow needs merging policies (lookm, lookm-avg, pivot-merge, …)")
        }
        _ = try policy.configurations(ids)
    }

    func run() throws {
        let source = try trace.open()
        let info = source.info
        let chosen = try layers.chosen(info)
        let configurations = try policy.configurations(try policy.ids(required: true))
        let P = info.shape.prefillLen
        let groups = MergeFlow.groups(info, compressionPoint: P).map(\.description)
        let targets = groups + [MergeFlow.dropped]
        let replay = Replay(trace: source, layers: chosen)
        var panels: [MergeFlowPanel] = []
        var rowsNote = ""
        let bar = Progress(total: configurations.count, label: "merge flow")
        for c in configurations {
            let result = try replay.runSync(try c.make(), budget: policy.spec, options: policy.options, metrics: [MergeFlow()])
            var values = [[Double]](repeating: [Double](repeating: 0, count: targets.count), count: groups.count)
            for (s, a) in groups.enumerated() {
                for (t, b) in targets.enumerated() {
                    guard let row = result.row(weight.metric, source: a, target: b) else { continue }
                    guard let v = row.value else {
                        throw CLIError(
                            "\(trace.path): \(weight.metric) of \(c.label) is undefined: \(row.note ?? "no value")"
                                + (weight == .attention ? "; try --weight tokens" : ""))
                    }
                    values[s][t] = v
                }
            }
            if let first = result.rows.first { rowsNote = "\(first.evalRowCount) \(first.evalRows.rawValue) evaluation rows" }
            panels.append(
                MergeFlowPanel(
                    title:
                        "\(c.label)   C = \(result.rows.first?.nominalTokens ?? 0)   C_act = \(RenderSupport.fmt(result.rows.first?.actualTokens ?? 0))",
                    style: .of(c), values: values))
            bar.step()
        }
        bar.finish()
        var sub = [
            "rows: evicted tokens by group; columns: the group of the kept token they merged into, or dropped; cells: share of the row"
        ]
        switch weight {
        case .attention:
            sub.append(
                "weighted by the attention of the \(rowsNote) (Σ: share of the rows' attention on those tokens); mean over KV heads and layers \(RenderSupport.compactList(chosen))"
            )
        case .tokens:
            sub.append("token counts (Σ: evicted tokens per KV head); mean over KV heads and layers \(RenderSupport.compactList(chosen))")
        }
        sub.append("budget \(policy.spec.figureText), fidelity \(policy.fidelity.rawValue)" + (policy.paramNote.map { "; \($0)" } ?? ""))
        if let note = RenderSupport.pseudoNote(info) { sub.append(note) }
        let total: @Sendable (Double) -> String = weight == .attention ? Self.percent : Self.count
        let fig = MergeFlowFigure(
            sources: groups, targets: targets, panels: panels, total: total,
            title: output.title(
                "\(RenderSupport.traceTitle(info)): where does evicted image information go at budget \(policy.spec.figureText)?"),
            subtitle: sub)
        try output.write(fig.build(), defaultName: "merge-flow-\(info.name)-\(policy.spec.fileTag)")
    }
}
