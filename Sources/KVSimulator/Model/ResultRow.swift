import KVPolicies

/// Whether the evaluation rows are true future rows (`i ≥ P`) or a proxy (the last `W` prefill
/// rows, which also fed the scores). METRICS.md, "Evaluation rows".
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
    public var value: Double?
    public var note: String?

    public init(_ metric: String, head: Int? = nil, image: Int? = nil, value: Double?, note: String? = nil) {
        self.metric = metric
        self.head = head
        self.image = image
        self.value = value
        self.note = note
    }
}

/// One tidy result row: the columns of METRICS.md ("Every result row records …"), one value each.
///
/// `layer` and `head` are a number or `all`; `value` is empty (nil) when the metric was omitted,
/// and `note` then says why.
public struct ResultRow: Sendable, Codable, Hashable {
    /// Trace name and its content hash.
    public var trace: String
    public var traceHash: String
    /// Policy id and its parameters (`key=value;…`, registry defaults included).
    public var policy: String
    public var params: String
    public var fidelity: String
    /// The budget fraction as asked (`--budget`), else nil; `budgetSpec` always describes it.
    public var budget: Double?
    public var budgetSpec: String
    /// The compression point `P`.
    public var compressionPoint: Int
    /// Nominal `C` and the actual kept count (mean over the KV heads and layers in scope).
    public var nominalTokens: Int
    public var actualTokens: Double
    public var metric: String
    public var layer: String
    public var head: String
    public var image: Int?
    public var value: Double?
    public var evalRows: EvaluationRows
    public var evalRowCount: Int
    public var note: String?

    public init(trace: String, traceHash: String, policy: String, params: String, fidelity: String, budget: Double?,
                budgetSpec: String, compressionPoint: Int, nominalTokens: Int, actualTokens: Double, metric: String,
                layer: String, head: String, image: Int?, value: Double?, evalRows: EvaluationRows, evalRowCount: Int,
                note: String?) {
        self.trace = trace
        self.traceHash = traceHash
        self.policy = policy
        self.params = params
        self.fidelity = fidelity
        self.budget = budget
        self.budgetSpec = budgetSpec
        self.compressionPoint = compressionPoint
        self.nominalTokens = nominalTokens
        self.actualTokens = actualTokens
        self.metric = metric
        self.layer = layer
        self.head = head
        self.image = image
        self.value = value
        self.evalRows = evalRows
        self.evalRowCount = evalRowCount
        self.note = note
    }

    /// The CSV columns, in order (snake case; loads with `pd.read_csv` as is).
    public static let columns = ["trace", "trace_hash", "policy", "params", "fidelity", "budget", "budget_spec",
                                 "compression_point", "nominal_tokens", "actual_tokens", "metric", "layer", "head",
                                 "image", "value", "eval_rows", "eval_row_count", "note"]

    enum CodingKeys: String, CodingKey {
        case trace, traceHash = "trace_hash", policy, params, fidelity, budget, budgetSpec = "budget_spec"
        case compressionPoint = "compression_point", nominalTokens = "nominal_tokens", actualTokens = "actual_tokens"
        case metric, layer, head, image, value, evalRows = "eval_rows", evalRowCount = "eval_row_count", note
    }

    /// The combination this row belongs to (trace × policy × parameters × fidelity × budget × P).
    public var combinationKey: String {
        [traceHash, policy, params, fidelity, budgetSpec, String(compressionPoint)].joined(separator: "|")
    }
}

/// One cell of a sweep: a policy (with parameters and fidelity) at one budget.
public struct Combination: Sendable, Hashable {
    public var policy: String
    public var parameters: [String: String]
    public var options: PolicyOptions
    public var budget: BudgetSpec

    public init(policy: String, parameters: [String: String] = [:], options: PolicyOptions = .init(), budget: BudgetSpec) {
        self.policy = policy
        self.parameters = parameters
        self.options = options
        self.budget = budget
    }

    /// `key=value;…` with the registry defaults filled in, sorted by key.
    public var paramsText: String {
        var all: [String: String] = [:]
        for p in PolicyRegistry.entry(policy)?.parameters ?? [] where !p.defaultValue.isEmpty { all[p.name] = p.defaultValue }
        for (k, v) in parameters { all[k] = v }
        return all.keys.sorted().map { "\($0)=\(all[$0]!)" }.joined(separator: ";")
    }

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
