import ArgumentParser
import Foundation
import KVPolicies
import KVSimulator
import KVTrace

/// `kvscope sweep`: every policy × budget × fidelity on every trace, into tidy CSV and JSON.
struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Replay every combination of policies and budgets on traces and write tidy results.",
        discussion: """
            Each layer is compressed once at P (default: the prefill length; --at N), the decision applied \
            to every KV head (kept, dropped, merged K/V), later positions appended unchanged, and the \
            metrics of METRICS.md measured on the evaluation rows: true future rows when the trace records \
            them, else the last --window prefill rows (eval_rows = proxy). Layers stream two at a time; \
            each layer is mapped once for all combinations.

            Writes OUT/results.csv (one row per trace × policy × budget × metric × layer, plus layer = all; \
            loads with pandas.read_csv as is) and OUT/results.json (the same rows plus run metadata). \
            Both appear atomically. Finished layers are kept in OUT/.parts, so an interrupted sweep rerun \
            with --resume skips what is already written. A metric whose inputs the trace lacks has an \
            empty value and a note.
            """
    )

    @Argument(help: ArgumentHelp("Traces: attn-trace v1 folders or single-file attn-trace .safetensors.", valueName: "trace"))
    var traces: [String]
    @Option(name: .customLong("policies"), help: ArgumentHelp("Comma-separated policy ids (see `kvscope policies`).", valueName: "a,b,c"))
    var policies: String
    @Option(name: .customLong("budgets"), help: ArgumentHelp("Comma-separated budget fractions b (C = int(P·b)).", valueName: "b1,b2,…"))
    var budgets: String = "0.05,0.1,0.2,0.3,0.5"
    @Option(name: .customLong("recent-share"), help: "Share of C spent on the recent window (default 0.5).")
    var recentShare: Double = 0.5
    @Option(name: .customLong("fidelity"), help: ArgumentHelp("code, intended, or both (code,intended).", valueName: "list"))
    var fidelity: String = "code"
    @Option(name: .customLong("metrics"), help: ArgumentHelp("Comma-separated metric ids (default: all of METRICS.md).", valueName: "list"))
    var metrics: String?
    @Option(name: .customLong("at"), help: "Compression point P (default: the trace's prefill length).")
    var at: Int?
    @Option(name: .customLong("topk"), help: "k of topk_recall.")
    var topK: Int = 16
    @Option(name: .customLong("window"), help: "Proxy evaluation window W when a trace has no future rows.")
    var window: Int = 32
    @Flag(name: .customLong("per-head"), help: "Also write one row per query head.")
    var perHead = false
    @Option(name: .customLong("out"), help: ArgumentHelp("Output folder (default: a new folder under Output/).", valueName: "dir"))
    var out: String?
    @Flag(name: .customLong("resume"), help: "Continue an interrupted sweep in --out, skipping finished combinations.")
    var resume = false
    @Option(name: .customLong("jobs"), help: "Layers processed at once.")
    var jobs: Int = 2

    func parsedBudgets() throws -> [BudgetSpec] {
        let parts = budgets.split(separator: ",")
        guard !parts.isEmpty else { throw ValidationError("--budgets: empty list (give fractions such as 0.1,0.2)") }
        return try parts.map {
            guard let b = Double($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--budgets: '\($0)' is not a number") }
            let spec = BudgetSpec.fraction(b, recentShare: recentShare)
            if let p = spec.problem { throw ValidationError(p) }
            return spec
        }
    }

    func parsedPolicies() throws -> [String] {
        let ids = policies.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for id in ids where PolicyRegistry.entry(id) == nil {
            throw ValidationError("--policies: unknown id '\(id)' (known: \(PolicyRegistry.ids.joined(separator: ", ")))")
        }
        guard !ids.isEmpty else { throw ValidationError("--policies: empty list") }
        return ids
    }

    func parsedFidelities() throws -> [Fidelity] {
        try fidelity.split(separator: ",").map {
            guard let f = Fidelity(rawValue: String($0)) else { throw ValidationError("--fidelity: '\($0)' is not code or intended") }
            return f
        }
    }

    func validate() throws {
        _ = try parsedBudgets(); _ = try parsedPolicies(); _ = try parsedFidelities()
        if let m = metrics { _ = try MetricCatalogue.select(m.split(separator: ",").map(String.init)) }
        if resume && out == nil { throw ValidationError("--resume needs --out DIR (the folder of the interrupted sweep)") }
        guard topK >= 1 else { throw ValidationError("--topk must be ≥ 1") }
        guard window >= 1 else { throw ValidationError("--window must be ≥ 1") }
        guard jobs >= 1 else { throw ValidationError("--jobs must be ≥ 1") }
    }

    func run() throws {
        let ids = try parsedPolicies(), specs = try parsedBudgets(), fids = try parsedFidelities()
        let chosen = try metrics.map { try MetricCatalogue.select($0.split(separator: ",").map(String.init)) } ?? MetricCatalogue.all
        var combos: [Combination] = []
        for id in ids { for f in fids { for b in specs {
            combos.append(Combination(policy: id, options: KVPolicies.PolicyOptions(fidelity: f), budget: b))
        } } }
        let sources = try traces.map { (path: $0, source: try TraceLoader.open($0)) }
        let settings = EvaluationSettings(compressionPoint: at, proxyWindow: window, topK: topK, perHead: perHead)
        let outURL: URL
        if let o = out { outURL = URL(fileURLWithPath: o) } else {
            let f = DateFormatter()
            f.dateFormat = "yyyyMMdd-HHmmss"
            outURL = URL(fileURLWithPath: "Output/sweep-\(f.string(from: Date()))")
        }
        try OutputGuard.check(outURL.path, against: traces, flag: "--out")
        let sweep = Sweep(traces: sources, combinations: combos, metrics: chosen, settings: settings, workers: jobs)
        let progress = ProgressBox(Progress(total: sweep.totalLayers, label: "sweep layers"))
        let meta: (Int) -> SweepMetadata = { n in
            SweepMetadata(kvscopeVersion: KVScope.version, commandLine: CommandLine.arguments,
                          traces: sources.map { t in
                              let P = at ?? t.source.info.shape.prefillLen
                              let qr = t.source.info.shape.queryRows
                              return .init(path: t.path, name: t.source.info.name, hash: t.source.info.contentHash, compressionPoint: P,
                                           evalRows: qr.upperBound > P ? "future" : "proxy")
                          },
                          policies: ids, budgets: specs.map { Combination.budgetText($0) }, fidelities: fids.map(\.rawValue),
                          metrics: chosen.map { type(of: $0).id }, topK: topK, proxyWindow: window, rowCount: n)
        }
        let rows = try sweep.run(out: outURL, resume: resume, metadata: meta) { _, _ in progress.step() }
        progress.finish()
        print("wrote \(rows.count) rows (\(combos.count) combinations × \(sources.count) trace(s)) to \(outURL.appendingPathComponent("results.csv").path) and results.json")
    }
}

/// `Progress` is used under the sweep's lock only.
final class ProgressBox: @unchecked Sendable {
    let p: Progress
    init(_ p: Progress) { self.p = p }
    func step() { p.step() }
    func finish() { p.finish() }
}
