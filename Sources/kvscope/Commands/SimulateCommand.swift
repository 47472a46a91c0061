import ArgumentParser
import Foundation
import KVPolicies
import KVSimulator
import KVTrace

/// `kvscope simulate`: replays one policy once per layer at the end of prefill and reports what it keeps.
struct SimulateCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample("simulate Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policy lookm --budget 0.2"),
        HelpExample(
            "simulate Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policy lookm --hh-ratio 0.1 --recent-ratio 0.1 --metrics --json",
            note: "the official ratio pair; every result row as JSON"),
        HelpExample(
            "simulate Examples/traces/smollm2-layer3-bare.npz --prefill-len 161 --layer 3 --policy h2o --tokens 32",
            note: "bare arrays, an absolute budget"),
        HelpExample(
            "simulate Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policy h2o --budget 0.2 --evict-per-step --layers 0-3 -o Output/decoding-h2o.csv",
            note: "H2O's decode rule, one eviction per generated token; every step's metrics as CSV"),
    ]

    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Replay a cache policy on a trace and report, per layer, what it keeps and merges.",
        discussion: """
            Each layer is compressed once at the end of prefill (P). Per layer it prints the nominal \
            cache size C and the actual size C_act (text-prior policies in code fidelity keep more than C), \
            the kept tokens per modality and per image, and the merges (evicted tokens merged into a kept slot); \
            every count but C is a mean over the layer's KV heads.

            Scores are computed in Double; ties go to the lowest position (and the lowest slot for merge \
            targets), whereas the official bf16 GPU runs had unspecified tie order.

            --save-cache DIR writes the compressed cache as an attn-trace-style folder: per layer \
            layer_NNN.safetensors with kept [KVH, C] int64 (original positions in cache order), k and v \
            [KVH, C, D] float32 (merged where the policy merges), merge_target [KVH, E] int64 (for each \
            evicted position in ascending order, the slot it merged into, −1 if dropped), plus cache.json. \
            Ragged decisions (adakv) pad kept with −1 and merge_target with −2.

            --json prints one JSON document instead of the tables: the trace, the configured policy and \
            budget, per layer the nominal C, the actual count per KV head, the merges (mean over KV heads, as in \
            the table) and the note codes, and \
            with --metrics every result row (the rows of a sweep's results.json at the same setting; \
            non-finite numbers are written as the strings "nan", "inf", "-inf").

            --decoding replays through decoding (docs/metrics.md#replay-through-decoding): every metric at each \
            generated step t on the rows up to t, one table line (and result rows with a step column) per step. \
            --recompress-every N runs the policy again on the cache every N steps; --evict-per-step applies H2O's \
            decode rule (one eviction per generated token, C fixed). Either implies --decoding.
            """ + "\n\n" + HelpExample.section(examples)
    )

    @OptionGroup var trace: TraceOptions
    @OptionGroup var policy: PolicyArguments
    @OptionGroup var budget: BudgetOptions

    @OptionGroup var layers: LayerOptions
    @Flag(
        name: .customLong("metrics"),
        help:
            "Replay the decision and print the metrics of docs/metrics.md (attention recall, output error, retention per modality and image, …)."
    )
    var metrics = false
    @Option(name: .customLong("save-cache"), help: ArgumentHelp("Write the compressed cache to this folder.", valueName: "dir"))
    var saveCache: String?
    @Flag(name: .customLong("json"), help: "Print the per-layer decisions (and with --metrics every result row) as one JSON document.")
    var json = false
    @OptionGroup var decoding: DecodingOptions
    @Option(
        name: [.customShort("o"), .customLong("output")],
        help: ArgumentHelp(
            "With --metrics or --decoding: also write every result row to this CSV file (the columns of a sweep's results.csv).",
            valueName: "file.csv"))
    var output: String?

    /// Metrics are measured with --metrics, and always in a decoding replay.
    var measures: Bool { metrics || decoding.replay != nil }

    func validate() throws {
        if json && saveCache != nil { throw ValidationError("--json: not with --save-cache (its cache.json already holds the decisions)") }
        if output != nil && !measures { throw ValidationError("--output: give --metrics or --decoding (it writes the result rows)") }
    }

    func run() throws {
        let source = try trace.open()
        let info = source.info
        if let dir = saveCache {
            try OutputGuard.check(dir, against: source.files.map(\.path) + [trace.path], flag: "--save-cache")
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), !isDir.boolValue {
                throw CLIError("--save-cache \(dir): is a file, expected a folder")
            }
        }
        if let o = output { try OutputGuard.check(o, against: source.files.map(\.path) + [trace.path], flag: "--output") }
        let chosen = try layers.chosen(info)
        let replay = Replay(trace: source, settings: EvaluationSettings(decoding: decoding.replay), layers: chosen)
        // A decoding replay on a trace without generated rows fails here, before any output.
        if decoding.replay != nil { _ = try DecodingReplay.rows(info, compressionPoint: info.shape.prefillLen) }
        let spec = try budget.spec()
        let p = try policy.make()
        let options = policy.options
        let P = info.shape.prefillLen
        let b = spec.resolve(P)
        // Decide every layer first, so that a failure prints one line and nothing else.
        var decided: [(LayerContext, LayerDecision)] = []
        for l in chosen {
            let ctx = try LayerContext(trace: source, layer: l, budget: spec, options: options)
            decided.append((ctx, try p.decide(ctx)))
        }
        if saveCache != nil {
            for (ctx, _) in decided { try DecisionApplier.checkTensors(context: ctx) }
        }
        let images = info.images
        let imageOf = info.imageIdOfPosition
        let shownModalities = Modality.allCases.filter { m in m == .text || info.modality.prefix(P).contains(m) }
        let header = ["layer", "nominal", "actual"] + shownModalities.map(\.description) + images.map { "img\($0.id)" } + ["merges"]
        var table: [[String]] = [header]
        var notes: [String] = []
        var summaries: [[String: Any]] = []
        for (ctx, d) in decided {
            let l = ctx.layer
            let G = Double(max(d.heads.count, 1))
            func mean(_ f: (HeadDecision) -> Int) -> String { fmt(Double(d.heads.reduce(0) { $0 + f($1) }) / G) }
            let actual = d.actual
            let actualText = d.isUniform ? String(actual.first ?? 0) : "\(actual.min()!)–\(actual.max()!) (mean \(mean { $0.kept.count }))"
            var row = [String(l), String(d.nominal), actualText]
            for m in shownModalities {
                row.append(mean { h in h.kept.filter { $0 < info.modality.count && info.modality[$0] == m }.count })
            }
            for img in images { row.append(mean { h in h.kept.filter { imageOf[$0] == img.id }.count }) }
            row.append(mean { $0.merges.count })
            table.append(row)
            for n in d.notes where !notes.contains(n.message) { notes.append(n.message) }
            summaries.append(["layer": l, "nominal": d.nominal, "actual": actual, "merges": d.meanMerges, "notes": d.notes.map(\.code)])
        }
        if json {
            let rows = measures ? try replay.runSync(p, budget: spec, options: options).rows : nil
            if let o = output, let rows { try writeOutput(Data(ResultWriter.csvBytes(rows)), to: o, flag: "--output") }
            let layers = decided.map { ctx, d in
                SimulateReport.Layer(
                    layer: ctx.layer, nominal: d.nominal, actual: d.actual, merges: d.meanMerges, notes: d.notes.map(\.code))
            }
            let configuration = PolicyConfiguration(describing: p)
            let report = RunReport(
                run: RunJSON(
                    info, policy: configuration.label, params: configuration.parameters.text, fidelity: options.fidelity,
                    budget: spec, compressionPoint: P),
                report: SimulateReport(hh: b.heavy, recent: b.recent, nominal: b.nominal, layers: layers, rows: rows))
            print(try jsonText(report))
            return
        }
        print(
            "trace \(info.name): P = \(P), H = \(info.shape.queryHeads), KVH = \(info.shape.kvHeads), D = \(info.shape.headDim), \(info.images.count) image(s)"
        )
        print(
            "policy \(PolicyConfiguration(describing: p).label), fidelity \(options.fidelity.rawValue), \(spec): hh = \(b.heavy), r = \(b.recent), C = \(b.nominal)"
        )
        var writerFolder: URL?
        if let dir = saveCache {
            let url = URL(fileURLWithPath: dir)
            try AtomicFile.refuseFolder(at: url.appendingPathComponent("cache.json"))
            try AtomicFile.makeFolder(url)
            for (ctx, d) in decided {
                try Self.save(d, context: ctx, policy: p.id, to: url.appendingPathComponent(AttnTraceWriter.fileName(layer: ctx.layer)))
            }
            writerFolder = url
        }
        RenderSupport.printTable(table)
        for n in notes { print("note: \(n)") }
        if measures {
            let result = try replay.runSync(p, budget: spec, options: options)
            print("")
            if let d = decoding.replay {
                print("decoding replay (\(d.label)):")
                print(SummaryTable.renderSteps(result), terminator: "")
            } else {
                print(SummaryTable.render(result), terminator: "")
            }
            if let o = output {
                try writeOutput(Data(ResultWriter.csvBytes(result.rows)), to: o, flag: "--output")
                print("wrote \(result.rows.count) result rows to \(o)")
            }
        }
        if let folder = writerFolder {
            let summary: [String: Any] = [
                "format": "kvscope-cache", "version": 1, "trace": info.name, "trace_hash": info.contentHash,
                "policy": p.id, "fidelity": options.fidelity.rawValue, "gqa": options.gqa.rawValue, "seed": options.seed,
                "budget": spec.description, "prefill_len": P, "hh": b.heavy, "recent": b.recent, "nominal": b.nominal,
                "kv_heads": info.shape.kvHeads, "head_dim": info.shape.headDim, "layers": summaries,
            ]
            let data = try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
            try AtomicFile.write(data, to: folder.appendingPathComponent("cache.json"))
            print("wrote \(chosen.count) layer file(s) and cache.json to \(folder.path)")
        }
    }

    func fmt(_ x: Double) -> String { x == x.rounded() ? String(Int(x)) : String(format: "%.1f", x) }

    /// One layer of the compressed cache as safetensors: `kept` and `merge_target` (padded with −1
    /// and −2), `k` and `v` as float32, each head's merged `Double` rows rounded once, written
    /// straight into the file's bytes (`DecisionApplier.applyRounded`, heads in parallel); each
    /// part of a few heads goes to the file while the next is computed
    /// (`SafeTensorsWriter.write(_:metadata:to:partBytes:fill:)`).
    static func save(_ d: LayerDecision, context ctx: LayerContext, policy: String, to url: URL) throws {
        let G = d.heads.count, D = ctx.headDim
        let C = d.heads.map(\.kept.count).max() ?? 0
        let E = d.heads.map(\.evicted.count).max() ?? 0
        let slots = [
            SafeTensorsWriter.Slot(name: "kept", dtype: .i64, shape: [G, C]),
            SafeTensorsWriter.Slot(name: "k", dtype: .f32, shape: [G, C, D]),
            SafeTensorsWriter.Slot(name: "v", dtype: .f32, shape: [G, C, D]),
            SafeTensorsWriter.Slot(name: "merge_target", dtype: .i64, shape: [G, E]),
        ]
        /// Rows `heads` of an int64 `[G, width]` tensor, row `g`: `values(g)`, then `pad`.
        func ints(_ raw: UnsafeMutableRawBufferPointer, _ heads: Range<Int>, width: Int, pad: Int64, _ values: (Int) -> [Int]) {
            for (j, g) in heads.enumerated() {
                let v = values(g)
                for i in 0 ..< width {
                    raw.storeBytes(of: (i < v.count ? Int64(v[i]) : pad).littleEndian, toByteOffset: 8 * (j * width + i), as: Int64.self)
                }
            }
        }
        try SafeTensorsWriter.write(
            slots,
            metadata: [
                "kvscope-cache": "1", "policy": policy, "layer": String(d.layer),
                "nominal": String(d.nominal), "prefill_len": String(d.prefill),
            ],
            to: url
        ) { i, heads, raw in
            switch i {
            case 0: ints(raw, heads, width: C, pad: -1) { d.heads[$0].kept }
            case 3: ints(raw, heads, width: E, pad: -2) { d.heads[$0].mergeTarget }
            default:
                let f = raw.bindMemory(to: Float.self)
                if !f.isEmpty {
                    try DecisionApplier.applyRounded(d, context: ctx, values: i == 2, heads: heads, slots: C, into: f.baseAddress!)
                }
                #if _endian(big)
                for j in f.indices { f[j] = Float(bitPattern: f[j].bitPattern.littleEndian) }
                #endif
            }
        }
    }
}

/// What `simulate --json` prints after the keys of the run (``RunJSON``): the resolved budget, per
/// layer the decision summary, and with `--metrics` every result row (the same rows, keys and order
/// as a sweep's `results.json`).
struct SimulateReport: Encodable {
    struct Layer: Encodable {
        var layer: Int
        var nominal: Int
        /// Kept count per KV head.
        var actual: [Int]
        /// Evicted tokens merged into a kept slot: the mean over KV heads (as the kept counts of the
        /// table), not the sum.
        var merges: Double
        var notes: [String]
    }
    var hh: Int
    var recent: Int
    var nominal: Int
    var layers: [Layer]
    var rows: [ResultRow]?
}
