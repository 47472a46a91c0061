import KVPolicies

/// Whether the evaluation rows are true future rows (`i ≥ P`) or a proxy (the last `W` prefill
/// rows, which also fed the scores). docs/metrics.md, "Evaluation rows".
public enum EvaluationRows: String, Sendable, Hashable, Codable {
    case future
    case proxy
    /// The trace records no usable rows at all (attention metrics are then omitted with a note).
    case none
}

/// One value of one metric on one layer: per query head (`head`), or for the layer as a whole
/// (`head == nil`). `value == nil` means omitted, and `note` says why.
public struct MetricValue: Sendable, Hashable {
    public var metric: String
    public var head: Int?
    public var image: Int?
    /// The source and target groups of a flow metric (`merge_flow`), else nil.
    public var source: String?
    public var target: String?
    public var value: Double?
    public var note: String?

    public init(
        _ metric: String, head: Int? = nil, image: Int? = nil, source: String? = nil, target: String? = nil, value: Double?,
        note: String? = nil
    ) {
        self.metric = metric
        self.head = head
        self.image = image
        self.source = source
        self.target = target
        self.value = value
        self.note = note
    }
}

/// One tidy result row: one metric value of one setting on one layer (or over all layers), with
/// the setting spelled out in typed columns. The columns are documented in `docs/results.md`.
///
/// `layer == nil` marks the aggregate over all layers (`all_layers = true` in the CSV);
/// `head == nil` the mean over query heads. `value` is nil when the metric was omitted, and
/// `note` then says why.
public struct ResultRow: Sendable, Codable, Hashable {
    /// Trace name and its content hash.
    public var trace: String
    public var traceHash: String
    /// The label of the configured policy (`lookm`, `h2o+pivotal`).
    public var policy: String
    /// The base policy (`text-prior` for `lookm`) and the merge strategy (`none` for eviction only).
    public var base: String
    public var merge: String
    /// The merge scope (`all`, `modality`, `image`) of a merging policy, nil for eviction only.
    public var mergeScope: String?
    /// Parameters as `key=value;…` (declared defaults included), and the same values typed.
    public var params: String
    public var parameters: [String: ParameterValue]
    public var fidelity: String
    /// The budget fraction as asked (`--budget`), else nil; `budgetSpec` always describes it.
    public var budget: Double?
    public var budgetSpec: String
    /// The budget's other forms, when it was given so (nil otherwise).
    public var hhRatio: Double?
    public var recentRatio: Double?
    public var recentShare: Double?
    public var tokens: Int?
    /// The compression point `P`.
    public var compressionPoint: Int
    /// Nominal `C` and the actual kept count (mean over the KV heads and layers in scope; NaN,
    /// and `null` in JSON, when the policy made no decision).
    public var nominalTokens: Int
    @NullWhenNotFinite public var actualTokens: Double
    public var metric: String
    /// The layer, or nil on the rows that aggregate all layers.
    public var layer: Int?
    /// The query head, or nil on the rows over all heads.
    public var head: Int?
    public var image: Int?
    /// The generated step `t` (1-based) of a decoding replay (docs/metrics.md#replay-through-decoding),
    /// or nil on the rows of a replay at one moment.
    public var step: Int?
    /// The source and target groups of a `merge_flow` row (`text`, `image 0`, …, target `dropped`), else nil.
    public var source: String?
    public var target: String?
    public var value: Double?
    public var evalRows: EvaluationRows
    public var evalRowCount: Int
    public var note: String?

    public init(
        trace: String, traceHash: String, configuration: PolicyConfiguration, fidelity: String, budget: BudgetSpec,
        compressionPoint: Int, nominalTokens: Int, actualTokens: Double, metric: String,
        layer: Int?, head: Int?, image: Int?, source: String? = nil, target: String? = nil, value: Double?, evalRows: EvaluationRows,
        evalRowCount: Int, note: String?, step: Int? = nil
    ) {
        self.trace = trace
        self.traceHash = traceHash
        self.policy = configuration.label
        self.base = configuration.base
        self.merge = configuration.mergeStrategy?.rawValue ?? "none"
        self.mergeScope = configuration.effectiveMergeScope?.rawValue
        self.params = configuration.parameters.text
        self.parameters = configuration.parameters.values
        self.fidelity = fidelity
        self.budget = budget.fraction
        self.budgetSpec = Combination.budgetText(budget)
        switch budget {
        case let .fraction(_, s): recentShare = s
        case let .tokens(n, s): tokens = n; recentShare = s
        case let .ratios(x, y): hhRatio = x; recentRatio = y
        }
        self.compressionPoint = compressionPoint
        self.nominalTokens = nominalTokens
        self.actualTokens = actualTokens
        self.metric = metric
        self.layer = layer
        self.head = head
        self.image = image
        self.step = step
        self.source = source
        self.target = target
        self.value = value
        self.evalRows = evalRows
        self.evalRowCount = evalRowCount
        self.note = note
        self.step = step
    }

    /// True on the rows that aggregate all layers.
    public var allLayers: Bool { layer == nil }
    /// The budget the row was run at (the inverse of the budget columns), nil when none is set.
    public var budgetSpecValue: BudgetSpec? {
        if let b = budget { return .fraction(b, recentShare: recentShare ?? 0.5) }
        if let n = tokens { return .tokens(n, recentShare: recentShare ?? 0.5) }
        if let x = hhRatio, let y = recentRatio { return .ratios(heavy: x, recent: y) }
        return nil
    }
    /// The configuration that produced the row (its label and recorded parameter values).
    public var configuration: PolicyConfiguration { PolicyConfiguration(label: policy, parameters: parameters) }
    /// The actual kept share of the prefill, `actual_tokens / P`.
    public var keptRatio: Double { compressionPoint > 0 ? actualTokens / Double(compressionPoint) : .nan }

    enum CodingKeys: String, CodingKey {
        case trace, traceHash = "trace_hash", policy, base, merge, mergeScope = "merge_scope", params, parameters, fidelity, budget,
            budgetSpec = "budget_spec"
        case hhRatio = "hh_ratio", recentRatio = "recent_ratio", recentShare = "recent_share", tokens
        case compressionPoint = "compression_point", nominalTokens = "nominal_tokens", actualTokens = "actual_tokens"
        case metric, layer, head, image, step, source, target, value, evalRows = "eval_rows", evalRowCount = "eval_row_count", note
    }

    /// The combination this row belongs to (trace × policy × parameters × fidelity × budget × P);
    /// the decoding step is not part of it (the steps of one replay are one combination).
    public var combinationKey: String {
        [traceHash, policy, params, fidelity, budgetSpec, String(compressionPoint)].joined(separator: "|")
    }
}

/// One cell of a sweep: a configured policy and run options at one budget.
public struct Combination: Sendable, Hashable {
    public var configuration: PolicyConfiguration
    public var options: PolicyOptions
    public var budget: BudgetSpec

    public init(_ configuration: PolicyConfiguration, options: PolicyOptions = .init(), budget: BudgetSpec) {
        self.configuration = configuration
        self.options = options
        self.budget = budget
    }

    /// A registry policy with its defaults.
    public init(policy id: String, options: PolicyOptions = .init(), budget: BudgetSpec) {
        self.init(PolicyConfiguration(id), options: options, budget: budget)
    }

    /// The policy label (`lookm`, `h2o+pivotal`).
    public var policy: String { configuration.label }

    /// `key=value;…` with the declared defaults filled in, sorted by key.
    public var paramsText: String { configuration.parameters.text }

    /// The budget as a stable text: `fraction=0.1;recent_share=0.5`, `tokens=64;…`, `hh_ratio=…;recent_ratio=…`.
    public var budgetText: String { Combination.budgetText(budget) }

    public static func budgetText(_ b: BudgetSpec) -> String {
        switch b {
        case let .fraction(x, s): "fraction=\(x);recent_share=\(s)"
        case let .tokens(n, s): "tokens=\(n);recent_share=\(s)"
        case let .ratios(x, y): "hh_ratio=\(x);recent_ratio=\(y)"
        }
    }

    /// The key of `ResultRow.combinationKey` for this combination on a trace.
    public func key(traceHash: String, compressionPoint: Int) -> String {
        [traceHash, policy, paramsText, options.fidelity.rawValue, budgetText, String(compressionPoint)].joined(separator: "|")
    }
}

/// A `Double` that JSON carries as `null` when it is not finite (JSON has no NaN), read back as NaN.
@propertyWrapper
public struct NullWhenNotFinite: Sendable, Hashable, Codable {
    public var wrappedValue: Double
    public init(wrappedValue: Double) { self.wrappedValue = wrappedValue }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        wrappedValue = c.decodeNil() ? .nan : try c.decode(Double.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if wrappedValue.isFinite { try c.encode(wrappedValue) } else { try c.encodeNil() }
    }

    /// NaN equals NaN here, so that a row without a decision is still found as a dictionary key.
    public static func == (a: Self, b: Self) -> Bool { a.wrappedValue == b.wrappedValue || a.wrappedValue.isNaN && b.wrappedValue.isNaN }
    public func hash(into h: inout Hasher) { if wrappedValue.isNaN { h.combine(UInt64.max) } else { h.combine(wrappedValue) } }
}
