import Foundation
import KVPolicies
import KVTrace

/// A sweep: every combination of policies × budgets × fidelities on every trace, streamed layer
/// by layer (each layer is mapped once and its evaluation context shared by all combinations; each
/// policy decides once per layer for all its budgets, reusing its scores where they do not depend on
/// the budget), two layers at a time. Finished layers are saved atomically under `OUT/.parts/`, so an
/// interrupted sweep rerun with `resume` skips the combinations already written; `results.csv`
/// and `results.json` are written atomically (temporary name, then rename) at the end.
public struct Sweep: Sendable {
    public var traces: [(path: String, source: any TraceSource)]
    public var combinations: [Combination]
    public var metrics: [any Metric]
    public var settings: EvaluationSettings
    public var workers: Int

    public init(traces: [(path: String, source: any TraceSource)], combinations: [Combination], metrics: [any Metric] = MetricCatalogue.all,
                settings: EvaluationSettings = .init(), workers: Int = 2) {
        self.traces = traces
        self.combinations = combinations
        self.metrics = metrics
        self.settings = settings
        self.workers = workers
    }

    /// Layers to run over all traces (the unit of progress).
    public var totalLayers: Int { traces.reduce(0) { $0 + $1.source.info.recordedLayers.count } }

    /// Runs the sweep into `out`; `progress(done, total, skipped)` is called after each layer (under a lock).
    /// Returns every row, sorted.
    @discardableResult
    public func run(out: URL, resume: Bool, metadata: (Int) -> SweepMetadata,
                    progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }) throws -> [ResultRow] {
        let fm = FileManager.default
        let parts = out.appendingPathComponent(".parts")
        let results = out.appendingPathComponent("results.csv")
        if !resume {
            if fm.fileExists(atPath: results.path) || fm.fileExists(atPath: parts.path) {
                throw SimulatorError("\(out.path) already holds a sweep: rerun with --resume to continue it, or choose another --out")
            }
        }
        try fm.createDirectory(at: parts, withIntermediateDirectories: true)
        let total = totalLayers
        let counter = Counter()
        var all: [ResultRow] = []
        for (_, source) in traces {
            let info = source.info
            let P = settings.compressionPoint ?? info.shape.prefillLen
            guard P >= 1 && P <= info.shape.seqLen else {
                throw SimulatorError("--at \(P): the compression point must be in 1...\(info.shape.seqLen) for \(info.name)")
            }
            let runs = try combinations.map { c in
                do { return try PlannedRun(c) } catch { throw SimulatorError("\(error)") }
            }
            let metrics = metrics, settings = settings
            let store = PartStore(dir: parts, traceHash: info.contentHash.isEmpty ? info.name : info.contentHash)
            try parallelEach(info.recordedLayers, workers: workers, { l in
                let existing = store.load(layer: l)
                let have = Set(existing.map(\.combinationKey))
                let todo = runs.filter { !have.contains($0.combination.key(traceHash: info.contentHash, compressionPoint: P)) }
                if todo.isEmpty { return existing }
                let fresh = try LayerEngine.run(trace: source, layer: l, runs: todo, metrics: metrics, settings: settings)
                return existing + fresh
            }, done: { l, rows in
                try store.save(layer: l, rows: rows)
                counter.value += 1
                progress(counter.value, total)
            })
            let wanted = Set(runs.map { $0.combination.key(traceHash: info.contentHash, compressionPoint: P) })
            var layerRows: [ResultRow] = []
            for l in info.recordedLayers { layerRows += store.load(layer: l).filter { wanted.contains($0.combinationKey) } }
            all += layerRows
            all += LayerEngine.aggregate(layerRows, metrics: metrics)
        }
        let sorted = ResultOrder.sort(all, policies: combinations.map(\.policy), params: combinations.map(\.paramsText),
                                      budgets: combinations.map(\.budgetText),
                                      metrics: metrics.map { type(of: $0).id })
        try AtomicFile.write(Data(ResultWriter.csv(sorted).utf8), to: results)
        try AtomicFile.write(try ResultWriter.json(sorted, metadata: metadata(sorted.count)), to: out.appendingPathComponent("results.json"))
        return sorted
    }
}

// @unchecked: mutated only in `parallelEach`'s `done`, which runs under its lock.
final class Counter: @unchecked Sendable { var value = 0 }

/// Finished layers of one trace: `.parts/<hash>_L<layer>.json`, each written atomically.
struct PartStore: Sendable {
    let dir: URL
    let traceHash: String

    func url(_ l: Int) -> URL {
        let safe = traceHash.map { $0.isLetter || $0.isNumber ? $0 : "_" }
        return dir.appendingPathComponent("\(String(safe))_L\(String(format: "%03d", l)).json")
    }

    func load(layer l: Int) -> [ResultRow] {
        guard let d = try? Data(contentsOf: url(l)) else { return [] }
        var rows = (try? JSONDecoder().decode([ResultRow].self, from: d)) ?? []
        for i in rows.indices where rows[i].actualTokens < 0 { rows[i].actualTokens = .nan }
        return rows
    }

    func save(layer l: Int, rows: [ResultRow]) throws {
        var clean = rows
        for i in clean.indices where !clean[i].actualTokens.isFinite { clean[i].actualTokens = -1 }
        try AtomicFile.write(try JSONEncoder().encode(clean), to: url(l))
    }
}
