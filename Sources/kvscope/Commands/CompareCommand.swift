import ArgumentParser
import Foundation
import KVPolicies
import KVSimulator
import KVTrace

/// `kvscope compare`: another implementation's kept indices against KVScope's decision.
struct CompareCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample(
            "simulate Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policy h2o --budget 0.2 --layers 0-1 --save-cache Output/h2o-cache",
            note: "first a cache written by KVScope itself (another tool's dump reads the same way)"),
        HelpExample(
            "compare Output/h2o-cache Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policy snapkv --budget 0.2",
            note: "which heads keep different positions under snapkv"),
    ]

    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare kept indices dumped by another implementation with KVScope's decision, per layer and head.",
        discussion: """
            KEPT holds the positions another tool kept: a .npy array, a .npz or .safetensors file with a \
            'kept' member (or one member per layer, named by its number: 0, layer_3, kept.3), or a folder \
            written by `simulate --save-cache`. Arrays are [L, heads, C] or one layer's [heads, C] (the file's \
            layer metadata, else --layer); heads are the trace's KV heads or its query heads; negative entries \
            are padding. Per (layer, head) it reports |K ∩ O|, the Jaccard overlap |K ∩ O| / |K ∪ O| of KVScope's \
            set K and the other set O, and the attention recall of each on the trace's evaluation rows \
            (docs/metrics.md#comparing-with-another-implementation), then the heads that differ most, so that \
            "my numbers differ from kvpress" can be traced to the heads that differ.
            """ + "\n\n" + HelpExample.section(examples)
    )

    @Argument(help: ArgumentHelp("Kept indices: .npy, .npz, .safetensors, or a --save-cache folder.", valueName: "kept"))
    var kept: String
    @OptionGroup var trace: TraceOptions
    @OptionGroup var policy: PolicyArguments
    @OptionGroup var budget: BudgetOptions
    @Option(
        name: [.customShort("o"), .customLong("output")],
        help: ArgumentHelp("Write the per-(layer, head) rows to this CSV file.", valueName: "file.csv"))
    var output: String?
    @Flag(name: .customLong("json"), help: "Print the rows and the summary as one JSON document.")
    var json = false
    @Option(name: .customLong("worst"), help: "How many of the most different (layer, head) pairs the summary names.")
    var worst = 5

    func validate() throws {
        guard worst >= 0 else { throw ValidationError("--worst must be ≥ 0, got \(worst)") }
    }

    func run() throws {
        let source = try trace.openPickingLayer()
        let info = source.info
        if let o = output { try OutputGuard.check(o, against: source.files.map(\.path) + [trace.path, kept], flag: "--output") }
        let P = info.shape.prefillLen
        let indices = try KeptIndices(kept, info: info, compressionPoint: P, layer: trace.layer)
        let configuration = try policy.configuration()
        let spec = try budget.spec()
        let rows = try KeptComparison.compare(
            indices, trace: source, policy: try configuration.make(), merges: configuration.merges,
            budget: spec, options: policy.options)
        let summary = CompareSummary(rows, show: worst)
        if let o = output {
            try writeOutput(Data(KeptComparison.csv(rows, perQueryHead: indices.perQueryHead).utf8), to: o, flag: "--output")
        }
        if json {
            let doc = RunReport(
                run: RunJSON(info, policy: configuration.label, budget: spec, compressionPoint: P),
                report: CompareReport(kept: kept, headKind: indices.perQueryHead ? "query" : "kv", summary: summary, rows: rows))
            print(try jsonText(doc))
            return
        }
        let kind = indices.perQueryHead ? "query head" : "KV head"
        print("\(kept) against \(configuration.label) at \(spec) on \(info.name) (P = \(P)): \(rows.count) (layer, \(kind)) pairs")
        print(
            "identical sets: \(summary.identical) of \(rows.count); mean Jaccard \(fmt(summary.meanJaccard)), lowest \(fmt(summary.minJaccard))"
        )
        if let a = summary.meanRecallKvscope, let b = summary.meanRecallOther {
            print("attention recall: kvscope \(fmt(a)), other \(fmt(b)) (mean over pairs; the difference is what the differing heads cost)")
        }
        if !summary.differing.isEmpty {
            print("most different:")
            var table = [
                [
                    "layer", indices.perQueryHead ? "query_head" : "kv_head", "jaccard", "common", "only_kvscope", "only_other",
                    "recall_kvscope", "recall_other",
                ]
            ]
            for r in summary.differing {
                table.append([
                    String(r.layer), String(r.head), fmt(r.jaccard), String(r.common), String(r.onlyKvscope), String(r.onlyOther),
                    r.recallKvscope.map(fmt) ?? "—", r.recallOther.map(fmt) ?? "—",
                ])
            }
            let widths = (0 ..< table[0].count).map { c in table.map { $0[c].count }.max()! }
            for line in table {
                print("  " + zip(line, widths).map { String(repeating: " ", count: $1 - $0.count) + $0 }.joined(separator: "  "))
            }
        }
        if let o = output { print("wrote \(rows.count) rows to \(o)") }
    }

    func fmt(_ x: Double) -> String { String(format: "%.4f", x) }
}

/// The summary of a comparison: how many sets agree, the mean and lowest overlap, and the pairs
/// of lowest Jaccard (ties: larger recall difference first, then layer and head).
struct CompareSummary: Encodable {
    var pairs: Int
    var identical: Int
    var meanJaccard: Double
    var minJaccard: Double
    var meanRecallKvscope: Double?
    var meanRecallOther: Double?
    var differing: [KeptOverlap]

    init(_ rows: [KeptOverlap], show: Int) {
        pairs = rows.count
        identical = rows.filter { $0.jaccard == 1 }.count
        meanJaccard = rows.isEmpty ? 1 : rows.map(\.jaccard).reduce(0, +) / Double(rows.count)
        minJaccard = rows.map(\.jaccard).min() ?? 1
        let a = rows.compactMap(\.recallKvscope), b = rows.compactMap(\.recallOther)
        meanRecallKvscope = a.isEmpty ? nil : a.reduce(0, +) / Double(a.count)
        meanRecallOther = b.isEmpty ? nil : b.reduce(0, +) / Double(b.count)
        func gap(_ r: KeptOverlap) -> Double { abs((r.recallKvscope ?? 0) - (r.recallOther ?? 0)) }
        differing = Array(
            rows.filter { $0.jaccard < 1 }.sorted {
                ($0.jaccard, -gap($0), $0.layer, $0.head) < ($1.jaccard, -gap($1), $1.layer, $1.head)
            }.prefix(show))
    }

    enum CodingKeys: String, CodingKey {
        case pairs, identical, meanJaccard = "mean_jaccard", minJaccard = "min_jaccard", meanRecallKvscope = "mean_recall_kvscope"
        case meanRecallOther = "mean_recall_other", differing = "most_different"
    }
}

/// What `compare --json` prints after the keys of the run (``RunJSON``).
struct CompareReport: Encodable {
    var kept: String
    var headKind: String
    var summary: CompareSummary
    var rows: [KeptOverlap]

    enum CodingKeys: String, CodingKey { case kept, headKind = "head_kind", summary, rows }
}
