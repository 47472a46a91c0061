import Foundation
import KVPolicies
import KVTrace

/// A combination ready to run: the policy built from its configuration (or given directly).
public struct PlannedRun: Sendable {
    public var combination: Combination
    public var policy: any CachePolicy
    /// True when the policy merges (its `output_error_evict` is omitted).
    public var merges: Bool

    public init(_ combination: Combination) throws {
        self.combination = combination
        policy = try combination.configuration.make()
        merges = combination.configuration.merges
    }

    /// A policy built by the caller; `configuration` describes it in the result rows.
    public init(policy: any CachePolicy, configuration: PolicyConfiguration, budget: BudgetSpec, options: PolicyOptions) {
        combination = Combination(configuration, options: options, budget: budget)
        self.policy = policy
        merges = configuration.merges
    }
}

/// Replays one layer for many combinations: maps the layer once, builds the evaluation context once
/// (attention rows, full-cache outputs) and one work cache that every policy and budget shares
/// (scores, norms, merge assignments: each computed once per layer), then decides, applies and
/// measures each combination.
public enum LayerEngine {
    /// The policy context of `run` on one layer: its options (proxy rows defaulting to the
    /// settings' window), its budget, and the layer's shared work cache.
    static func context(
        _ run: PlannedRun, info: TraceInfo, tensors: LayerTensors, compressionPoint P: Int, trace: any TraceSource,
        cache: WorkCache, settings: EvaluationSettings
    ) -> LayerContext {
        var options = run.combination.options
        if options.proxyRows == nil { options.proxyRows = settings.proxyWindow }
        return LayerContext(
            info: info, tensors: tensors, budget: run.combination.budget, options: options,
            compressionPoint: P, trace: trace, cache: cache)
    }

    /// The per-layer result rows (`layer = l`, all heads, plus per-head rows when asked); with
    /// `settings.decoding`, those of `DecodingEngine` (one set per generated step).
    public static func run(
        trace: any TraceSource, layer l: Int, runs: [PlannedRun], metrics: [any Metric],
        settings: EvaluationSettings
    ) throws -> [ResultRow] {
        if let d = settings.decoding {
            return try DecodingEngine.run(trace: trace, layer: l, runs: runs, metrics: metrics, settings: settings, decoding: d)
        }
        let info = trace.info
        let tensors = try trace.layer(l)
        let P = settings.compressionPoint ?? info.shape.prefillLen
        var rows: [ResultRow] = []
        var evalContext: EvaluationContext?
        let cache = WorkCache()
        var lastReplay: ReplayLayer?
        let contexts = runs.map {
            context($0, info: info, tensors: tensors, compressionPoint: P, trace: trace, cache: cache, settings: settings)
        }
        // Every merge search of the layer's runs, planned so that each KV head's serves them all.
        MergePlan.register(zip(runs, contexts).filter { $0.0.merges }.map { ($0.0.policy, $0.1) })
        for (run, ctx) in zip(runs, contexts) {
            if evalContext == nil { evalContext = EvaluationContext(ctx, settings: settings) }
            let ec = evalContext!
            let template = Template(info: info, combination: run.combination, P: P, nominal: ctx.budget.nominal, context: ec)
            let decision: LayerDecision
            do { decision = try run.policy.decide(ctx) } catch {
                for m in metrics {
                    for s in m.series(info, compressionPoint: P, merges: run.merges) {
                        rows.append(template.row(s, layer: l, head: nil, actual: .nan, value: nil, note: "\(error)"))
                    }
                }
                continue
            }

            // Consecutive runs that decide alike (the full cache at every budget, a policy whose
            // budgets all keep the whole prefill) share one replay.
            let replay =
                lastReplay?.reused(for: decision, merges: run.merges) ?? ReplayLayer(decision, merges: run.merges, context: ec)
            lastReplay = replay
            let actual = Double(decision.actual.reduce(0, +)) / Double(max(decision.heads.count, 1))
            for m in metrics {
                let series = m.series(info, compressionPoint: P, merges: run.merges)
                if let why = m.missing(replay, ec) {
                    for s in series { rows.append(template.row(s, layer: l, head: nil, actual: actual, value: nil, note: why)) }
                    continue
                }
                let values = try m.evaluate(replay, ec)
                for s in series {
                    let mine = values.filter { s.matches($0) }
                    if let whole = mine.first(where: { $0.head == nil }) {
                        rows.append(template.row(s, layer: l, head: nil, actual: actual, value: whole.value, note: whole.note))
                        continue
                    }
                    let defined = mine.compactMap(\.value)
                    let note = defined.isEmpty ? (mine.first(where: { $0.note != nil })?.note ?? "undefined on this layer") : nil
                    rows.append(
                        template.row(
                            s, layer: l, head: nil, actual: actual,
                            value: defined.isEmpty ? nil : defined.reduce(0, +) / Double(defined.count), note: note))
                    if settings.perHead {
                        for v in mine.sorted(by: { ($0.head ?? -1) < ($1.head ?? -1) }) {
                            let g = ec.kvHeadOfQueryHead[v.head ?? 0]
                            rows.append(
                                template.row(
                                    s, layer: l, head: v.head ?? 0,
                                    actual: Double(decision.heads[g].kept.count), value: v.value, note: v.value == nil ? v.note : nil))
                        }
                    }
                }
            }
        }
        return rows
    }

    /// The rows of one combination on one layer: one prototype row holds the combination's columns
    /// (label, parameter and budget texts, built once), and every row is a copy of it that shares
    /// their storage (a sweep holds tens of thousands of rows until it writes them).
    struct Template {
        var prototype: ResultRow

        init(info: TraceInfo, combination: Combination, P: Int, nominal: Int, context: EvaluationContext) {
            prototype = ResultRow(
                trace: info.name, traceHash: info.contentHash, configuration: combination.configuration,
                fidelity: combination.options.fidelity.rawValue, budget: combination.budget, compressionPoint: P, nominalTokens: nominal,
                actualTokens: .nan, metric: "", layer: nil, head: nil, image: nil, value: nil, evalRows: context.kind,
                evalRowCount: context.rowCount, note: nil)
        }

        func row(_ s: MetricSeries, layer: Int?, head: Int?, actual: Double, value: Double?, note: String?) -> ResultRow {
            var r = prototype
            r.actualTokens = actual
            r.metric = s.metric
            r.layer = layer
            r.head = head
            r.image = s.image
            r.source = s.source
            r.target = s.target
            r.value = value.flatMap { $0.isFinite ? $0 : nil }
            r.note = value == nil ? (note ?? "undefined") : nil
            return r
        }
    }

    /// Adds the `layer = all` rows: per combination, metric, image, head (and decoding step), the uniform mean over
    /// layers of the defined values (the sum for `cache_bytes`), or an empty value with the first note.
    public static func aggregate(_ layerRows: [ResultRow], metrics: [any Metric]) -> [ResultRow] {
        struct Key: Hashable {
            var combo: String; var metric: String; var image: Int?; var source: String?; var target: String?; var head: Int?; var step: Int?
        }
        var groups: [Key: [ResultRow]] = [:]
        var order: [Key] = []
        for r in layerRows where r.layer != nil {
            let k = Key(
                combo: r.combinationKey, metric: r.metric, image: r.image, source: r.source, target: r.target, head: r.head, step: r.step)
            if groups[k] == nil { order.append(k) }
            groups[k, default: []].append(r)
        }
        let sums = Set(metrics.filter { $0.aggregation == .sum }.map { type(of: $0).id })
        var out: [ResultRow] = []
        for k in order {
            // In layer order, so that the sums do not depend on the order layers finished in.
            let g = groups[k]!.sorted { $0.layer! < $1.layer! }
            var row = g[0]
            row.layer = nil
            let defined = g.compactMap(\.value)
            let actuals = g.map(\.actualTokens).filter { $0.isFinite }
            row.actualTokens = actuals.isEmpty ? .nan : actuals.reduce(0, +) / Double(actuals.count)
            if defined.isEmpty {
                row.value = nil
                row.note = g.first(where: { $0.note != nil })?.note ?? "undefined"
            } else {
                let s = defined.reduce(0, +)
                row.value = sums.contains(k.metric) ? s : s / Double(defined.count)
                row.note = nil
            }
            out.append(row)
        }
        return out
    }
}

/// Sorting of result rows, so that output does not depend on scheduling.
public enum ResultOrder {
    /// Sorts by trace, then the given policy and budget order, metric order, layer (`all` last),
    /// head (`all` first), image, a flow row's source and target, then the decoding step.
    public static func sort(
        _ rows: [ResultRow], policies: [String] = [], params: [String] = [], budgets: [String] = [],
        metrics: [String] = []
    ) -> [ResultRow] {
        func metricIndex(_ m: String) -> Int {
            if let i = metrics.firstIndex(of: m) { return i }
            return metrics.firstIndex(of: MetricCatalogue.family(of: m)) ?? metrics.count
        }
        func num(_ s: Int?, allFirst: Bool) -> Int { s ?? (allFirst ? -1 : Int.max) }
        // Each row's positions in the given orders, computed once (not at every comparison).
        func index(_ a: [String]) -> [String: Int] {
            var d: [String: Int] = [:]
            for (i, x) in a.enumerated() where d[x] == nil { d[x] = i }
            return d
        }
        let pIndex = index(policies), aIndex = index(params), bIndex = index(budgets)
        var mIndex: [String: Int] = [:]
        let keys: [[Int]] = rows.map { a in
            let m: Int
            if let known = mIndex[a.metric] { m = known } else { m = metricIndex(a.metric); mIndex[a.metric] = m }
            return [
                pIndex[a.policy] ?? policies.count, aIndex[a.params] ?? params.count, bIndex[a.budgetSpec] ?? budgets.count, m,
                num(a.layer, allFirst: false), num(a.head, allFirst: true), a.image ?? -1, a.step ?? -1,
            ]
        }
        let order = rows.indices.sorted { i, j in
            let a = rows[i], b = rows[j]
            let ka = keys[i], kb = keys[j]
            if a.trace != b.trace { return a.trace < b.trace }
            if a.traceHash != b.traceHash { return a.traceHash < b.traceHash }
            if ka != kb { return ka.lexicographicallyPrecedes(kb) }
            if a.policy != b.policy { return a.policy < b.policy }
            if a.params != b.params { return a.params < b.params }
            if a.fidelity != b.fidelity { return a.fidelity < b.fidelity }
            if a.budgetSpec != b.budgetSpec { return a.budgetSpec < b.budgetSpec }
            if a.metric != b.metric { return a.metric < b.metric }
            // Flow rows (merge_flow): sources, then targets, in group order (text, image 0, 1, …, dropped).
            if a.source != b.source { return FlowOrder.precedes(a.source, b.source) }
            return FlowOrder.precedes(a.target, b.target)
        }
        return order.map { rows[$0] }
    }
}
