/// `--fidelity code|intended` (docs/policies.md#fidelity-code-and-intended).
public enum Fidelity: String, Sendable, Hashable, Codable, CaseIterable {
    /// Reproduce the official LOOK-M classes, quirks included.
    case code
    /// Nominal budget, correctly paired merge sources, per-head filters.
    case intended
}

/// How query-head scores are combined into KV-head scores (docs/policies.md#gqa-reduction).
public enum GQAReduction: String, Sendable, Hashable, Codable, CaseIterable {
    case mean, max, sum
}

/// The merge filter of the averaged and weighted merges (docs/policies.md#the-merge-wrapper).
public enum MergeFilter: String, Sendable, Hashable, Codable, CaseIterable {
    /// One flag per evicted rank, shared by all heads (the official code).
    case rankShared = "rank-shared"
    /// One flag per (head, evicted token).
    case perHead = "per-head"
}

/// Run-wide options every policy may read.
public struct PolicyOptions: Sendable, Hashable, Codable {
    public var fidelity: Fidelity
    public var gqa: GQAReduction
    /// Seed of `random` (default 0).
    public var seed: UInt64
    /// `--image-gate`: keep text-only prompts whole under official H2O-family policies (§4.9).
    public var imageGate: Bool
    /// The proxy evaluation rows (the last `W` prefill rows) the oracle scores by when the trace has no
    /// rows after `P`; nil: the oracle then needs future rows. The engine sets it from its settings.
    public var proxyRows: Int?

    public init(fidelity: Fidelity = .code, gqa: GQAReduction = .mean, seed: UInt64 = 0, imageGate: Bool = false, proxyRows: Int? = nil) {
        self.fidelity = fidelity
        self.gqa = gqa
        self.seed = seed
        self.imageGate = imageGate
        self.proxyRows = proxyRows
    }
}
