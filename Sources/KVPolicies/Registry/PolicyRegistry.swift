/// One hyper-parameter of a policy, with its default as text.
public struct PolicyParameter: Sendable, Hashable {
    public var name: String
    public var defaultValue: String
    public var help: String
    public init(_ name: String, _ defaultValue: String, _ help: String) {
        self.name = name
        self.defaultValue = defaultValue
        self.help = help
    }
}

/// A registry entry: id, a one-line summary, parameters with defaults and a factory.
public struct PolicyEntry: Sendable {
    public var id: String
    public var summary: String
    /// The official `kv_mode`, when the policy is one of the LOOK-M classes.
    public var officialMode: String?
    public var parameters: [PolicyParameter]
    public var requirements: Requirements
    /// True when it already merges (it then refuses `--merge`).
    public var merges: Bool
    /// True when it spends part of `C` on the recent window `r`.
    public var usesRecent: Bool
    public var make: @Sendable (PolicyParameters) throws -> any CachePolicy
}

/// `key=value` hyper-parameter overrides (`--param window=64`), read with typed accessors.
public struct PolicyParameters: Sendable, Hashable {
    public var values: [String: String]
    public var policy = ""
    public init(_ values: [String: String] = [:]) { self.values = values }

    func text(_ key: String, _ d: String) -> String { values[key] ?? d }
    func int(_ key: String, _ d: Int) throws -> Int {
        guard let s = values[key] else { return d }
        guard let v = Int(s) else { throw PolicyError(.parameter, policy: policy, "parameter \(key): '\(s)' is not an integer") }
        return v
    }
    func double(_ key: String, _ d: Double?) throws -> Double? {
        guard let s = values[key] else { return d }
        guard let v = Double(s) else { throw PolicyError(.parameter, policy: policy, "parameter \(key): '\(s)' is not a number") }
        return v
    }
    func choice<E: RawRepresentable & CaseIterable>(_ key: String, _ d: E) throws -> E where E.RawValue == String {
        guard let s = values[key] else { return d }
        guard let v = E(rawValue: s) else {
            throw PolicyError(.parameter, policy: policy, "parameter \(key): '\(s)' is not one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return v
    }
    func ints(_ key: String) throws -> [Int] {
        guard let s = values[key], !s.isEmpty else { return [] }
        return try s.split(separator: ",").map {
            guard let v = Int($0) else { throw PolicyError(.parameter, policy: policy, "parameter \(key): '\($0)' is not an integer") }
            return v
        }
    }
}

/// Every policy id of POLICIES.md §9 that KVScope implements.
public enum PolicyRegistry {
    static let snapParams = [PolicyParameter("window", "32", "observation window w"), PolicyParameter("kernel", "7", "pooling kernel (odd)"),
                             PolicyParameter("pooling", "max", "max | avg")]
    static func snap(_ p: PolicyParameters) throws -> SnapKV {
        SnapKV(window: try p.int("window", 32), kernel: try p.int("kernel", 7), pooling: try p.choice("pooling", Pooling.max))
    }
    static let h2oParams = [PolicyParameter("score", "sum", "sum | mean | normalized (s/(P−j), a KVScope addition)")]

    public static let entries: [PolicyEntry] = [
        PolicyEntry(id: "lookm", summary: "LOOK-M: text-prior eviction + pivotal merge (the paper's main method)", officialMode: "text_prior_pivot_merge",
                    parameters: [], requirements: [.colsum, .spans, .keys, .values], merges: true, usesRecent: true) { _ in LookMFamily.lookm() },
        PolicyEntry(id: "lookm-avg", summary: "text prior + averaged merge (head-shared filter, rank-mismatched sources in code mode)",
                    officialMode: "text_prior_avg_merge", parameters: [], requirements: [.colsum, .spans, .keys, .values], merges: true,
                    usesRecent: true) { _ in LookMFamily.lookmAverage() },
        PolicyEntry(id: "lookm-weighted", summary: "text prior + cosine-weighted merge (filtered, unnormalised)", officialMode: "text_prior_weighted_merge",
                    parameters: [], requirements: [.colsum, .spans, .keys, .values], merges: true, usesRecent: true) { _ in LookMFamily.lookmWeighted() },
        PolicyEntry(id: "text-prior", summary: "LOOK-M text-prior eviction, no merge (code mode keeps every text token)", officialMode: "text_prior_h2o",
                    parameters: [], requirements: [.colsum, .spans], merges: false, usesRecent: true) { _ in TextPrior() },
        PolicyEntry(id: "pivot-merge", summary: "H2O with 4 sinks + pivotal merge", officialMode: "pivot_merge",
                    parameters: [], requirements: [.colsum, .keys, .values], merges: true, usesRecent: true) { _ in LookMFamily.pivotMerge() },
        PolicyEntry(id: "avg-merge", summary: "H2O with 4 sinks + averaged merge", officialMode: "avg_merge",
                    parameters: [], requirements: [.colsum, .keys, .values], merges: true, usesRecent: true) { _ in LookMFamily.averageMerge() },
        PolicyEntry(id: "weighted-merge", summary: "H2O with 4 sinks + weighted merge", officialMode: "weighted_merge",
                    parameters: [], requirements: [.colsum, .keys, .values], merges: true, usesRecent: true) { _ in LookMFamily.weightedMerge() },
        PolicyEntry(id: "h2o", summary: "per-head top-hh of accumulated attention + recent window (no sinks)", officialMode: "h2o",
                    parameters: h2oParams, requirements: .colsum, merges: false, usesRecent: true) { p in
                        H2O(score: try p.choice("score", H2O.Score.sum)) },
        PolicyEntry(id: "h2o-sinks", summary: "h2o with positions 0–3 forced (the selection step of the official merge classes)", officialMode: nil,
                    parameters: h2oParams + [PolicyParameter("sinks", "4", "forced sink positions")], requirements: .colsum, merges: false,
                    usesRecent: true) { p in H2OSinks(score: try p.choice("score", H2O.Score.sum), sinks: try p.int("sinks", 4)) },
        PolicyEntry(id: "snapkv-lookm", summary: "the LOOK-M repository's SnapKV: w = r, avg-pool k5, float softmax, descending-score order",
                    officialMode: "snapkv", parameters: [PolicyParameter("kernel", "5", "pooling kernel"), PolicyParameter("pooling", "avg", "avg | max")],
                    requirements: [.queries, .keys], merges: false, usesRecent: true) { p in
                        SnapKVLookM(kernel: try p.int("kernel", 5), pooling: try p.choice("pooling", Pooling.avg)) },
        PolicyEntry(id: "full", summary: "keeps the whole cache (official origin)", officialMode: "origin",
                    parameters: [], requirements: [], merges: false, usesRecent: false) { _ in FullCache() },
        PolicyEntry(id: "random", summary: "recent window + hh uniform random positions, seeded (--seed)", officialMode: nil,
                    parameters: [], requirements: [], merges: false, usesRecent: true) { _ in RandomEviction() },
        PolicyEntry(id: "streaming", summary: "StreamingLLM: sinks + the most recent C − sinks", officialMode: nil,
                    parameters: [PolicyParameter("sinks", "4", "attention sinks")], requirements: [], merges: false, usesRecent: false) { p in
                        Streaming(sinks: try p.int("sinks", 4)) },
        PolicyEntry(id: "snapkv", summary: "SnapKV: top C − w by pooled window attention + the window", officialMode: nil,
                    parameters: snapParams, requirements: .windowRows, merges: false, usesRecent: false) { p in try snap(p) },
        PolicyEntry(id: "pyramidkv", summary: "PyramidKV: SnapKV scores with layer budgets shrinking with depth", officialMode: nil,
                    parameters: [PolicyParameter("beta", "20", "pyramid ratio β")] + snapParams, requirements: .windowRows, merges: false,
                    usesRecent: false) { p in PyramidKV(beta: try p.int("beta", 20), snap: try snap(p)) },
        PolicyEntry(id: "adakv", summary: "Ada-KV: head-adaptive budgets over SnapKV scores (ragged heads)", officialMode: nil,
                    parameters: [PolicyParameter("alpha", "0.2", "per-head floor share α"), PolicyParameter("base", "snapkv", "scoring base (snapkv only)")] + snapParams,
                    requirements: .windowRows, merges: false, usesRecent: false) { p in
                        guard p.text("base", "snapkv") == "snapkv" else {
                            throw PolicyError(.parameter, policy: "adakv", "base \(p.text("base", "")) is not supported: only snapkv scores are comparable across heads")
                        }
                        return AdaKV(alpha: try p.double("alpha", 0.2)!, base: try snap(p)) },
        PolicyEntry(id: "tova", summary: "TOVA: top C by head-mean attention of the last prefill row, shared by heads", officialMode: nil,
                    parameters: [], requirements: .windowRows, merges: false, usesRecent: false) { _ in TOVA() },
        PolicyEntry(id: "knorm", summary: "keep the C keys of smallest L2 norm per KV head", officialMode: nil,
                    parameters: [PolicyParameter("skip-layers", "", "layers kept whole, e.g. 0,1")], requirements: .keys, merges: false,
                    usesRecent: false) { p in KNorm(skipLayers: try p.ints("skip-layers")) },
        PolicyEntry(id: "fastv", summary: "FastV: after layer K drop the lowest R of image tokens by attention at K", officialMode: nil,
                    parameters: [PolicyParameter("fastv-layer", "2", "layer K"), PolicyParameter("drop-ratio", "0.5", "R (1 − b under --budget b)"),
                                 PolicyParameter("fastv-rows", "last", "last | all")],
                    requirements: [.windowRows, .spans, .otherLayers], merges: false, usesRecent: false) { p in
                        FastV(layer: try p.int("fastv-layer", 2), dropRatio: try p.double("drop-ratio", nil), rows: try p.choice("fastv-rows", FastV.Rows.last)) },
        PolicyEntry(id: "oracle", summary: "upper bound: top C by true future attention per KV head (reads the future)", officialMode: nil,
                    parameters: [], requirements: .future, merges: false, usesRecent: false) { _ in Oracle() },
    ]

    /// Every id, in catalogue order.
    public static var ids: [String] { entries.map(\.id) }

    public static func entry(_ id: String) -> PolicyEntry? { entries.first { $0.id == id } }

    /// Builds the policy `id` with parameter overrides, optionally wrapped in a merge (§7).
    public static func make(_ id: String, parameters: [String: String] = [:], merge: MergeStrategy? = nil,
                            filter: MergeFilter? = nil) throws -> any CachePolicy {
        guard let e = entry(id) else {
            throw PolicyError(.unknownPolicy, policy: id, "unknown policy id (known: \(ids.joined(separator: ", ")))")
        }
        let known = Set(e.parameters.map(\.name))
        if let bad = parameters.keys.sorted().first(where: { !known.contains($0) }) {
            throw PolicyError(.parameter, policy: id, "has no parameter '\(bad)'" + (known.isEmpty ? "" : " (parameters: \(known.sorted().joined(separator: ", ")))"))
        }
        var p = PolicyParameters(parameters)
        p.policy = id
        let base = try e.make(p)
        guard let merge else {
            if filter != nil, var m = base as? Merging<TextPrior> { m.filter = filter; return m }
            if filter != nil, var m = base as? Merging<H2O> { m.filter = filter; return m }
            return base
        }
        guard !e.merges else { throw PolicyError(.parameter, policy: id, "already merges; --merge applies to non-merging policies") }
        return Merging(base: AnyCachePolicy(base), strategy: merge, filter: filter)
    }
}
