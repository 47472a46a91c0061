import Foundation
import KVPolicies
import KVTrace

/// The replay engine (docs/metrics.md#setting): compresses once at the compression point `P`
/// (default: the prefill length), applies the policy's decision to every layer and KV head
/// (keeping, dropping, merging K/V), appends later positions unchanged, and evaluates the metrics
/// on the evaluation rows (true future rows when recorded, else the last `W` prefill rows,
/// flagged `proxy`). Layers run on both cores; results are sorted.
public struct Replay: Sendable {
    public let trace: any TraceSource
    public var settings: EvaluationSettings
    /// Layers to replay (default: every recorded layer).
    public var layers: [Int]?

    public init(trace: any TraceSource, compressionPoint: Int? = nil, settings: EvaluationSettings = .init(), layers: [Int]? = nil) {
        self.trace = trace
        var s = settings
        if let p = compressionPoint { s.compressionPoint = p }
        self.settings = s
        self.layers = layers
    }

    public func run(
        _ policy: any CachePolicy, budget: BudgetSpec, options: PolicyOptions = .init(),
        metrics: [any Metric] = MetricCatalogue.all
    ) async throws -> ReplayResult {
        try runSync(policy, budget: budget, options: options, metrics: metrics)
    }

    /// The same, synchronously (for command-line tools).
    public func runSync(
        _ policy: any CachePolicy, budget: BudgetSpec, options: PolicyOptions = .init(),
        metrics: [any Metric] = MetricCatalogue.all
    ) throws -> ReplayResult {
        let info = trace.info
        let P = settings.compressionPoint ?? info.shape.prefillLen
        let run = PlannedRun(policy: policy, configuration: PolicyConfiguration(describing: policy), budget: budget, options: options)
        return ReplayResult(info: info, combination: run.combination, compressionPoint: P, rows: try runSync([run], metrics: metrics))
    }

    /// Several planned runs in one pass over the layers: each layer is read once, and its
    /// evaluation context (with `settings.decoding`, its per-row contexts) is shared by every run.
    /// Returns the rows of every run (per layer and `all`), sorted with the runs in the given order.
    /// `progress` is called once per finished layer (under a lock).
    public func runSync(
        _ runs: [PlannedRun], metrics: [any Metric] = MetricCatalogue.all,
        progress: @escaping @Sendable () -> Void = {}
    ) throws -> [ResultRow] {
        let info = trace.info
        let P = settings.compressionPoint ?? info.shape.prefillLen
        guard P >= 1 && P <= info.shape.seqLen else {
            throw SimulatorError("--at \(P): the compression point must be in 1...\(info.shape.seqLen)")
        }
        if settings.decoding != nil { _ = try DecodingReplay.rows(info, compressionPoint: P) }
        let chosen = layers ?? info.recordedLayers
        let source = trace, settings = settings
        let collected = Locked<[ResultRow]>([])
        try parallelEach(
            chosen, workers: 2,
            { l in
                try LayerEngine.run(trace: source, layer: l, runs: runs, metrics: metrics, settings: settings)
            },
            done: { _, rows in
                collected.withLock { $0 += rows }; progress()
            })
        var rows = collected.withLock { $0 }
        rows += LayerEngine.aggregate(rows, metrics: metrics)
        return ResultOrder.sort(rows, policies: runs.map(\.combination.policy), metrics: metrics.map { type(of: $0).id })
    }
}

/// The rows of one replay (per layer and `all`), with accessors.
public struct ReplayResult: Sendable {
    public let info: TraceInfo
    public let combination: Combination
    public let compressionPoint: Int
    public let rows: [ResultRow]

    /// The value of `metric` on `layer` (nil → `all`), head `all`, at decoding step `step` (nil: a
    /// replay at one moment); `source`/`target` pick a flow row.
    public func value(
        _ metric: String, layer: Int? = nil, image: Int? = nil, source: String? = nil, target: String? = nil,
        step: Int? = nil
    ) -> Double? {
        row(metric, layer: layer, image: image, source: source, target: target, step: step)?.value
    }

    public func row(
        _ metric: String, layer: Int? = nil, image: Int? = nil, source: String? = nil, target: String? = nil,
        step: Int? = nil
    ) -> ResultRow? {
        rows.first {
            $0.metric == metric && $0.layer == layer && $0.head == nil && $0.image == image && $0.source == source
                && $0.target == target && $0.step == step
        }
    }

    /// The decoding steps present, ascending (empty for a replay at one moment).
    public var steps: [Int] { Array(Set(rows.compactMap(\.step))).sorted() }

    /// Whether evaluation used true future rows or a proxy.
    public var evalRows: EvaluationRows { rows.first?.evalRows ?? .none }
}
