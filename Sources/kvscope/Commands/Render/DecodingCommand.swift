import ArgumentParser
import Foundation
import KVPlot
import KVPolicies
import KVSimulator
import KVTrace

/// `kvscope render decoding`: a metric versus the generated step, one line per policy.
struct DecodingCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample(
            "render decoding Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policies h2o,snapkv,streaming,lookm --budget 0.2 --layers 0-7 -o Output/decoding.png"
        ),
        HelpExample(
            "render decoding Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policies h2o,tova --budget 0.2 --evict-per-step --layers 0-7 -o Output/decoding-per-step.png",
            note: "H2O's decode rule: one eviction per generated token"),
    ]

    static let configuration = CommandConfiguration(
        commandName: "decoding",
        abstract: "A metric versus the generated step t, one line per policy (replay through decoding).",
        discussion: """
            Each policy compresses every layer once at the end of prefill (P); then each generated row \
            i = P + t − 1 is measured against the cache as it stands at step t. The point at step t is the \
            metric over the rows P … P + t − 1 (each row against the cache it saw), averaged over heads and \
            layers as everywhere (docs/metrics.md#replay-through-decoding); at the last step of a look-once \
            replay it equals `simulate --metrics`. --recompress-every N runs the policy again on the cache every N \
            steps (grey verticals mark those steps); --evict-per-step applies H2O's decode rule (one eviction \
            per generated token, C fixed). Needs a trace with generated rows.
            """ + "\n\n" + HelpExample.section(examples)
    )

    @OptionGroup var trace: TraceOptions
    @OptionGroup var policy: RenderPolicyOptions
    @OptionGroup var decoding: DecodingOptions
    @Option(
        name: .customLong("metric"), help: "Metric id, e.g. attention_recall, output_error, topk_recall (`kvscope metrics` lists them).")
    var metric: String = "attention_recall"
    @OptionGroup var layers: LayerOptions
    @OptionGroup var output: RenderOutputOptions

    func validate() throws {
        _ = try policy.ids(required: true)
        do { _ = try MetricCatalogue.select([metric]) } catch { throw ValidationError("--metric: \(error)") }
    }

    func run() throws {
        let source = try trace.open()
        let info = source.info
        let ids = try policy.ids(required: true)
        let chosen = try layers.chosen(info)
        let setting = decoding.replay ?? DecodingReplay()
        let P = info.shape.prefillLen
        let steps = try DecodingReplay.rows(info, compressionPoint: P).count
        let metrics = try MetricCatalogue.select([metric])
        let replay = Replay(trace: source, settings: EvaluationSettings(decoding: setting), layers: chosen)
        let configurations = try ids.map { try PolicyConfiguration.parse($0, parameters: policy.parameters(for: $0)) }
        let runs = try configurations.map { try PlannedRun(Combination($0, options: policy.options, budget: policy.spec)) }
        // Every policy in one pass over the layers: each layer's per-row contexts are built once.
        let bar = Locked(Progress(total: chosen.count, label: "replaying layers"))
        let all = try replay.runSync(runs, metrics: metrics) { bar.withLock { $0.step() } }
        bar.withLock { $0.finish() }
        var curves: [Curve] = []
        for configuration in configurations {
            let rows = all.filter {
                $0.policy == configuration.label && $0.metric == metric && $0.layer == nil && $0.head == nil && $0.image == nil
                    && $0.step != nil
            }
            let defined = rows.filter { $0.value != nil }.sorted { $0.step! < $1.step! }
            guard !defined.isEmpty else {
                throw CLIError(
                    "--metric \(metric): \(configuration.label) has no value on \(info.name) (\(rows.first?.note ?? "no such series"))")
            }
            curves.append(
                Curve(
                    policy: configuration.label, style: .of(configuration), label: configuration.label,
                    x: defined.map { Double($0.step!) }, y: defined.map { $0.value! }))
        }
        let label = MetricLabel.of(metric)
        let b = policy.spec.resolve(P)
        var sub = [
            "budget \(policy.spec.figureText) (C = \(b.nominal), r = \(b.recent)), fidelity \(policy.fidelity.rawValue); \(setting.label)",
            "point t: \(metric) over generated rows P … P + t − 1 (P = \(P)), each against the cache it saw; mean over heads and layers \(RenderSupport.compactList(chosen))",
        ]
        if let note = policy.paramNote { sub.append(note) }
        if let note = RenderSupport.pseudoNote(info) { sub.append(note) }
        let marks = setting.recompressEvery.map { n in Array(stride(from: n, to: steps, by: n)) } ?? []
        let fig = DecodingFigure(
            curves: curves, metric: label.axis, steps: steps,
            title: output.title("\(RenderSupport.traceTitle(info)): how does each policy's loss develop over decoding?"),
            subtitle: sub, reference: label.reference, recompressedAfter: marks)
        try output.write(fig.build(), defaultName: "decoding-\(info.name)-\(metric)-\(policy.spec.fileTag)")
    }
}
