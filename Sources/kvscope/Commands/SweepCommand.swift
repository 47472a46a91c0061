import ArgumentParser
import Foundation
import KVPolicies
import KVSimulator
import KVTrace

/// `kvscope sweep`: every policy × budget × fidelity on every trace, into tidy CSV and JSON.
struct SweepCommand: ExampledCommand {
    static let examples: [HelpExample] =
        [
            HelpExample("sweep Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policies h2o,lookm --budgets 0.1,0.2 -o Output/sweep"),
            HelpExample(
                "sweep Examples/traces/smollm2-layer3-bare.npz --prefill-len 161 --layer 3 --policies lookm,text-prior --hh-ratio 0.05,0.1,0.2 --recent-ratio 0.05,0.1 -o Output/sweep-ratios",
                note: "bare arrays (one layer), the official ratio pair as a grid"),
            HelpExample(
                "sweep Examples/traces/smollm2-layer3-bare.npz --prefill-len 161 --layer 3 --policies snapkv --param window=8,16,32 --budgets 0.2,0.4 -o Output/sweep-window",
                note: "a parameter axis"),
        ] + shardExamples

    /// Two shards of a sweep and their collect (also `kvscope collect`'s examples).
    static let shardExamples: [HelpExample] = [
        HelpExample(
            "sweep Examples/traces/smollm2-layer3-bare.npz --prefill-len 161 --layer 3 --policies h2o,lookm --budgets 0.1,0.2 -o Output/sweep-sharded --shard 1/2",
            note: "two shards (e.g. on two machines), then collect"),
        HelpExample(
            "sweep Examples/traces/smollm2-layer3-bare.npz --prefill-len 161 --layer 3 --policies h2o,lookm --budgets 0.1,0.2 -o Output/sweep-sharded --shard 2/2"
        ),
        HelpExample("collect Output/sweep-sharded"),
    ]

    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Replay every combination of policies and budgets on traces and write tidy results.",
        discussion: """
            Runs every combination of the grid axes: --policies × --merge × each --param list × --fidelity × \
            the budget axis (--budgets, --tokens, or --hh-ratio × --recent-ratio, each crossed with \
            --recent-share). Each layer is compressed once at P (default: the prefill length; --at N), the \
            decision applied to every KV head (kept, dropped, merged K/V), later positions appended unchanged, \
            and every metric measured on the evaluation rows: the rows after P when the trace records them, else \
            the last --proxy-rows prefill rows (eval_rows = proxy). Layers stream two at a time; work that \
            several settings share (scores, merge assignments) is computed once per layer. --decoding (or \
            --recompress-every N, --evict-per-step) replays through decoding instead: one set of rows per \
            generated step, in a step column (docs/metrics.md#replay-through-decoding).

            Writes OUT/results.csv (one row per trace × setting × metric × layer, plus the all-layers rows; \
            one column per grid axis; `pandas.read_csv` loads it with numeric columns; see docs/results.md) \
            and OUT/results.json (the same rows plus run metadata). An interrupted sweep rerun with --resume \
            skips the layers already written. With --shard i/n the sweep runs only its slice of the cells \
            (trace × setting × layer, split by estimated cost) into OUT/shards/i-of-n/, and `kvscope collect OUT` \
            merges the slices into the files a single-process run writes, byte for byte (see `kvscope slurm`). A metric whose inputs the trace lacks has an empty value and a \
            note; the summary at the end counts such cells.
            """ + "\n\n" + HelpExample.section(examples)
    )

    @Argument(
        help: ArgumentHelp(
            "Traces: attn-trace v1 folders, single-file attn-trace .safetensors, or bare .npy/.npz/.safetensors (with the mapping flags).",
            valueName: "trace"))
    var traces: [String]
    @OptionGroup(title: "Bare arrays") var mapping: MappingOptions
    @OptionGroup var grid: GridOptions
    @Option(
        name: .customLong("metrics"),
        help: ArgumentHelp("Comma-separated metric ids (default: every metric; `kvscope metrics` lists them).", valueName: "list"))
    var metrics: ListArgument<String>?
    @Option(name: .customLong("at"), help: "Compression point P (default: the trace's prefill length).")
    var at: Int?
    @Option(name: .customLong("topk"), help: "k of topk_recall.")
    var topK: Int = 16
    @Option(
        name: .customLong("proxy-rows"), help: "Proxy evaluation rows W: the last W prefill rows, used when a trace has no rows after P.")
    var proxyRows: Int = 32
    @Flag(name: .customLong("per-head"), help: "Also write one row per query head.")
    var perHead = false
    @OptionGroup var decoding: DecodingOptions
    @Option(
        name: [.customShort("o"), .customLong("output"), .customLong("out")],
        help: ArgumentHelp("Output folder (default: a new folder under Output/).", valueName: "dir"))
    var out: String?
    @Flag(name: .customLong("resume"), help: "Continue an interrupted sweep in --output, skipping finished layers.")
    var resume = false
    @Option(name: .customLong("jobs"), help: "Layers processed at once.")
    var jobs: Int = 2
    @Flag(name: .customLong("json"), help: "Print the end-of-sweep summary as JSON.")
    var json = false
    @OptionGroup var sharding: ShardOptions

    func validate() throws {
        _ = try chosenMetrics()
        if resume && out == nil { throw ValidationError("--resume needs --output DIR (the folder of the interrupted sweep)") }
        if sharding.shard != nil && out == nil {
            throw ValidationError("--shard needs --output DIR (the folder every shard and `kvscope collect` share)")
        }
        guard topK >= 1 else { throw ValidationError("--topk must be ≥ 1") }
        guard proxyRows >= 1 && proxyRows <= 1 << 24 else { throw ValidationError("--proxy-rows must be in 1…16777216") }
        guard jobs >= 1 && jobs <= 256 else { throw ValidationError("--jobs must be in 1…256") }
    }

    /// The metrics of `--metrics`, or every metric.
    func chosenMetrics() throws -> [any Metric] {
        try metrics.map { try MetricCatalogue.select($0.values) } ?? MetricCatalogue.all
    }

    func run() throws {
        guard let done = try execute() else { return }
        print(json ? try done.summary.jsonText() : done.summary.text, terminator: "")
    }

    /// Runs the sweep (also the first half of `kvscope explore`, which passes its safe-set settings)
    /// and returns its rows, summary and folder; nil for one shard (`kvscope collect` finishes the
    /// sweep). With --resume on a folder whose shards `collect` assembled (or could), the shards'
    /// rows are reused when they are of this very command, and nothing is recomputed.
    func execute(explore: SafeSpec? = nil) throws -> (rows: [ResultRow], summary: SweepSummary, out: URL)? {
        let combos = try grid.combinations()
        let chosen = try chosenMetrics()
        let map = try mapping.mapping()
        let sources = try traces.map { (path: $0, source: try TraceLoader.open($0, mapping: map)) }
        let settings = EvaluationSettings(
            compressionPoint: at, proxyWindow: proxyRows, topK: topK, perHead: perHead, decoding: decoding.replay)
        if settings.decoding != nil {
            for t in sources { _ = try DecodingReplay.rows(t.source.info, compressionPoint: at ?? t.source.info.shape.prefillLen) }
        }
        let outURL: URL
        if let o = out {
            outURL = URL(fileURLWithPath: o)
        } else {
            let f = DateFormatter()
            f.dateFormat = "yyyyMMdd-HHmmss"
            outURL = URL(fileURLWithPath: "Output/sweep-\(f.string(from: Date()))")
        }
        try OutputGuard.check(outURL.path, against: traces, flag: "--out")
        var sweep = Sweep(traces: sources, combinations: combos, metrics: chosen, settings: settings, workers: jobs)
        sweep.explore = explore
        let progress = Locked(Progress(total: sweep.totalLayers, label: "sweep layers"))
        var labels: [String] = []
        for c in combos where !labels.contains(c.policy) { labels.append(c.policy) }
        var budgets: [String] = []
        for c in combos where !budgets.contains(c.budgetText) { budgets.append(c.budgetText) }
        let meta: (Int) -> SweepMetadata = { n in
            SweepMetadata(
                kvscopeVersion: KVScope.version, commandLine: ShardOptions.recordedCommandLine(),
                traces: sources.map { t in
                    let P = at ?? t.source.info.shape.prefillLen
                    let qr = t.source.info.shape.queryRows
                    return .init(
                        path: t.path, name: t.source.info.name, hash: t.source.info.contentHash, compressionPoint: P,
                        evalRows: qr.upperBound > P ? "future" : "proxy")
                },
                policies: labels, budgets: budgets, fidelities: grid.fidelity.values.map(\.rawValue),
                metrics: chosen.map { type(of: $0).id }, topK: topK, proxyWindow: proxyRows, rowCount: n)
        }
        let shard = try sharding.spec()
        let shardsDir = outURL.appendingPathComponent("shards")
        if resume, shard == nil, FileManager.default.fileExists(atPath: shardsDir.path) {
            let collected = try ShardCollector.collect(outURL)
            guard ShardCollector.isSameRun(collected, metadata: meta(0), explore: explore) else {
                throw CLIError(
                    "\(shardsDir.path): shards of another command (\(collected.manifest.metadata.commandLine.dropFirst().joined(separator: " "))); choose another --out"
                )
            }
            try ShardCollector.write(collected, to: outURL)
            if !json { print("reused the \(collected.manifest.shard.count) collected shard(s) in \(shardsDir.path): nothing recomputed") }
            let summary = SweepSummary(
                collected.rows, combinations: combos.count, traces: sources.count,
                csv: outURL.appendingPathComponent("results.csv").path, json: outURL.appendingPathComponent("results.json").path)
            return (collected.rows, summary, outURL)
        }
        let rows = try sweep.run(out: outURL, resume: resume, shard: shard, metadata: meta) { _, _ in progress.withLock { $0.step() } }
        progress.withLock { $0.finish() }
        if let shard {
            let folder = outURL.appendingPathComponent("shards").appendingPathComponent(shard.folderName).path
            print("shard \(shard): wrote \(rows.count) layer rows to \(folder); when every shard is done: kvscope collect \(outURL.path)")
            return nil
        }
        let summary = SweepSummary(
            rows, combinations: combos.count, traces: sources.count,
            csv: outURL.appendingPathComponent("results.csv").path, json: outURL.appendingPathComponent("results.json").path)
        return (rows, summary, outURL)
    }
}
