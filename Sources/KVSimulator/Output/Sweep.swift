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
    /// An explore's safe-set settings (nil for a plain sweep). A shard records them, and the command
    /// (`explore` when set, else `sweep`), so that `collect` checks them and writes `safe.csv`.
    public var explore: SafeSpec?
    /// The command a shard records.
    public var command: String { explore == nil ? "sweep" : "explore" }

    public init(
        traces: [(path: String, source: any TraceSource)], combinations: [Combination], metrics: [any Metric] = MetricCatalogue.all,
        settings: EvaluationSettings = .init(), workers: Int = 2
    ) {
        self.traces = traces
        self.combinations = combinations
        self.metrics = metrics
        self.settings = settings
        self.workers = workers
    }

    /// Layers to run over all traces (the unit of progress).
    public var totalLayers: Int { traces.reduce(0) { $0 + $1.source.info.recordedLayers.count } }

    /// Runs the sweep into `out`; `progress(done, total)` is called after each layer (under a lock).
    /// Returns every row, sorted.
    ///
    /// With `shard`, runs only the cells (trace × setting × layer) that `ShardPlan` gives that shard
    /// and writes only `OUT/shards/<i>-of-<n>/`: its finished layers (`.parts/`), its rows
    /// (`rows.json`) and, last, `shard.json` (a `ShardManifest` holding `metadata(0)`), all atomically;
    /// `results.csv` is then left to `ShardCollector`. Returns the shard's layer rows.
    @discardableResult
    public func run(
        out: URL, resume: Bool, shard: ShardSpec? = nil, metadata: (Int) -> SweepMetadata,
        progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }
    ) throws -> [ResultRow] {
        let fm = FileManager.default
        let base = shard.map { out.appendingPathComponent("shards").appendingPathComponent($0.folderName) } ?? out
        let parts = base.appendingPathComponent(".parts")
        let results = out.appendingPathComponent("results.csv")
        let json = out.appendingPathComponent("results.json")
        let manifestURL = base.appendingPathComponent(ShardManifest.fileName)
        if !resume {
            if shard != nil, fm.fileExists(atPath: base.path) {
                throw SimulatorError("\(base.path) already holds this shard: rerun with --resume to continue it, or choose another --out")
            }
            if shard == nil, fm.fileExists(atPath: results.path) && fm.fileExists(atPath: json.path) {
                throw SimulatorError("\(out.path) already holds a sweep: rerun with --resume to continue it, or choose another --out")
            }
            if shard == nil, fm.fileExists(atPath: results.path) || fm.fileExists(atPath: parts.path) {
                throw SimulatorError(
                    "\(out.path) holds an unfinished sweep (layer parts, or results.csv without results.json): rerun with --resume to finish it, or choose another --out"
                )
            }
        }
        try AtomicFile.refuseFolder(at: results)
        try AtomicFile.refuseFolder(at: json)
        // Temporary files of a killed run are removed now; this run's are renamed or removed.
        AtomicFile.removeStaleTemporaries(in: out)
        AtomicFile.removeStaleTemporaries(in: parts)
        let plan = shard.map { ShardPlan(self, shard: $0) }
        for (_, source) in traces {
            let info = source.info
            let P = settings.compressionPoint ?? info.shape.prefillLen
            guard P >= 1 && P <= info.shape.seqLen else {
                throw SimulatorError("--at \(P): the compression point must be in 1...\(info.shape.seqLen) for \(info.name)")
            }
        }
        let runs = try combinations.map { c in
            do { return try PlannedRun(c) } catch { throw SimulatorError("\(error)") }
        }
        try AtomicFile.makeFolder(parts)
        // The (trace, layer) pairs with work for this shard, and which combinations each runs.
        func assigned(_ t: Int, _ l: Int) -> [Int] { plan?.combinations(trace: t, layer: l) ?? Array(combinations.indices) }
        let total = traces.indices.reduce(0) { n, t in n + traces[t].source.info.recordedLayers.filter { !assigned(t, $0).isEmpty }.count }
        let counter = Locked(0)
        var layerRowsByTrace: [[ResultRow]] = []
        for (t, (_, source)) in traces.enumerated() {
            let info = source.info
            let P = settings.compressionPoint ?? info.shape.prefillLen
            let metrics = metrics, settings = settings
            let store = PartStore(dir: parts, traceHash: info.contentHash.isEmpty ? info.name : info.contentHash)
            let layers = info.recordedLayers.filter { !assigned(t, $0).isEmpty }
            let mine = Dictionary(uniqueKeysWithValues: layers.map { l in (l, assigned(t, l).map { runs[$0] }) })
            // Each layer's rows as this run saved them, kept so that they are not read back.
            let finished = Locked([Int: [ResultRow]]())
            try parallelEach(
                layers, workers: workers,
                { l -> ([ResultRow], Data?) in
                    let existing = store.load(layer: l)
                    let have = Set(existing.map(\.combinationKey))
                    let todo = mine[l]!.filter { !have.contains($0.combination.key(traceHash: info.contentHash, compressionPoint: P)) }
                    if todo.isEmpty { return (existing, nil) }
                    let rows = try existing + LayerEngine.run(trace: source, layer: l, runs: todo, metrics: metrics, settings: settings)
                    return (rows, PartStore.encode(rows))
                },
                done: { l, result in
                    let (rows, encoded) = result
                    if let encoded { try store.save(layer: l, encoded: encoded) }
                    finished.withLock { $0[l] = rows }
                    let n = counter.withLock {
                        $0 += 1; return $0
                    }
                    progress(n, total)
                })
            var layerRows: [ResultRow] = []
            let rowsOf = finished.withLock { $0 }
            for l in layers {
                let wanted = Set(mine[l]!.map { $0.combination.key(traceHash: info.contentHash, compressionPoint: P) })
                layerRows += (rowsOf[l] ?? store.load(layer: l)).filter { wanted.contains($0.combinationKey) }
            }
            layerRowsByTrace.append(layerRows)
        }
        let order = ResultOrderKeys(combinations: combinations, metrics: metrics)
        if let shard, let plan {
            let manifest = ShardManifest(
                command: command, shard: shard, cells: plan.cellCount, totalCells: plan.totalCells,
                layers: traces.map(\.source.info.recordedLayers), order: order, metadata: metadata(0),
                explore: explore)
            try AtomicFile.write(PartStore.encode(layerRowsByTrace), to: base.appendingPathComponent(ShardManifest.rowsFileName))
            try AtomicFile.write(try manifest.encoded(), to: manifestURL)
            return layerRowsByTrace.flatMap { $0 }
        }
        let sorted = Sweep.assemble(layerRowsByTrace, order: order, metrics: metrics)
        // Both files are written to temporary names first, then renamed json first and csv last:
        // a results.csv never stands without its results.json (a csv alone is an incomplete sweep).
        try AtomicFile.writeAll([
            (try ResultWriter.json(sorted, metadata: metadata(sorted.count)), json),
            (Data(ResultWriter.csvBytes(sorted)), results),
        ])
        return sorted
    }

    /// The finished table from the layer rows of each trace (in layer order): the layer rows, each
    /// trace's all-layers rows (`LayerEngine.aggregate`), sorted by `ResultOrder.sort` with `order`.
    /// The single-process sweep and `ShardCollector` both end here, so their files are identical.
    public static func assemble(_ layerRowsByTrace: [[ResultRow]], order: ResultOrderKeys, metrics: [any Metric]) -> [ResultRow] {
        var all: [ResultRow] = []
        for layerRows in layerRowsByTrace {
            all += layerRows
            all += LayerEngine.aggregate(layerRows, metrics: metrics)
        }
        return ResultOrder.sort(all, policies: order.policies, params: order.params, budgets: order.budgets, metrics: order.metrics)
    }
}

/// The orders `ResultOrder.sort` follows: the sweep's policy labels, parameter texts and budget
/// texts in grid order (first occurrence), and its metric ids.
public struct ResultOrderKeys: Sendable, Codable, Equatable {
    public var policies: [String]
    public var params: [String]
    public var budgets: [String]
    public var metrics: [String]

    public init(combinations: [Combination], metrics: [any Metric]) {
        func unique(_ a: [String]) -> [String] {
            var seen = Set<String>()
            return a.filter { seen.insert($0).inserted }
        }
        policies = unique(combinations.map(\.policy))
        params = unique(combinations.map(\.paramsText))
        budgets = unique(combinations.map(\.budgetText))
        self.metrics = metrics.map { type(of: $0).id }
    }
}

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
        return (try? JSONDecoder().decode([ResultRow].self, from: d)) ?? []
    }

    func save(layer l: Int, rows: [ResultRow]) throws { try save(layer: l, encoded: Self.encode(rows)) }

    /// Saves rows already encoded by `encode(_:)`.
    func save(layer l: Int, encoded: Data) throws { try AtomicFile.write(encoded, to: url(l)) }

    /// One layer's rows as stored: compact JSON (`RowJSON`), an undefined `actual_tokens` as `null`.
    static func encode(_ rows: [ResultRow]) -> Data { Data(RowJSON.array(rows, pretty: false)) }

    /// The layer rows of each trace, stored as by `save`.
    static func encode(_ byTrace: [[ResultRow]]) -> Data { Data(RowJSON.arrays(byTrace)) }
    static func decode(_ data: Data) throws -> [[ResultRow]] { try JSONDecoder().decode([[ResultRow]].self, from: data) }
}
