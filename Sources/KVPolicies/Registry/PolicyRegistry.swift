import Foundation

/// Every policy KVScope implements, as a list of policy types. Adding a policy is one file (a
/// type conforming to `DeclaredPolicy`) and one line here.
public enum PolicyRegistry {
    public static let types: [any DeclaredPolicy.Type] = [
        LookM.self, LookMAverage.self, LookMWeighted.self, TextPrior.self,
        PivotMerge.self, AverageMerge.self, WeightedMerge.self,
        H2O.self, H2OSinks.self, SnapKVLookM.self, FullCache.self, RandomEviction.self, Streaming.self,
        SnapKV.self, PyramidKV.self, AdaKV.self, TOVA.self, KNorm.self, KeyDiff.self, FastV.self, Oracle.self,
    ]

    /// Every declaration, in catalogue order.
    public static let declarations: [PolicyDeclaration] = types.map { $0.declaration }

    /// Every id, in catalogue order.
    public static var ids: [String] { declarations.map(\.id) }

    public static func declaration(_ id: String) -> PolicyDeclaration? { declarations.first { $0.id == id } }

    static func type(_ id: String) -> (any DeclaredPolicy.Type)? { types.first { $0.declaration.id == id } }

    /// The declaration of `id`, matched case-insensitively; an unknown id gets a suggestion.
    public static func resolve(_ id: String) throws -> PolicyDeclaration {
        let key = id.trimmingCharacters(in: .whitespaces).lowercased()
        if let d = declarations.first(where: { $0.id == key }) { return d }
        if key.contains(",") {
            throw PolicyError(
                .unknownPolicy, policy: id, "unknown policy id: one policy at a time here; `kvscope sweep --policies a,b` runs several")
        }
        if let near = suggestion(key, among: ids) {
            throw PolicyError(.unknownPolicy, policy: id, "unknown policy id; did you mean '\(near)'? (`kvscope policies` lists them)")
        }
        throw PolicyError(.unknownPolicy, policy: id, "unknown policy id (known: \(ids.joined(separator: ", ")))")
    }

    /// The closest of `names` to `s` by edit distance, when it is close enough to be a typo.
    public static func suggestion(_ s: String, among names: [String]) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var prev = Array(0 ... b.count)
            for i in 1 ... max(a.count, 1) where !a.isEmpty {
                var cur = [i] + Array(repeating: 0, count: b.count)
                for j in 1 ... max(b.count, 1) where !b.isEmpty {
                    cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                }
                prev = cur
            }
            return a.isEmpty ? b.count : prev[b.count]
        }
        let a = Array(s.lowercased())
        let scored = names.map { ($0, distance(a, Array($0))) }.sorted { $0.1 < $1.1 }
        guard let best = scored.first, best.1 <= max(2, a.count / 3) else { return nil }
        return best.0
    }

    /// Builds the policy `id` with parameter overrides given as text, optionally wrapped in a merge.
    public static func make(
        _ id: String, parameters: [String: String] = [:], merge: MergeStrategy? = nil,
        filter: MergeFilter? = nil, scope: MergeScope? = nil
    ) throws -> any CachePolicy {
        try PolicyConfiguration.parse(id, parameters: parameters, merge: merge, filter: filter, scope: scope).make()
    }
}

/// A configured policy: a registry policy, its parameter values, and an optional merge wrapper.
/// This value (not a string) travels from the CLI to the engine, the result rows and the figures.
public struct PolicyConfiguration: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The registry id.
    public var id: String
    /// Every declared parameter's value (defaults filled in by `parse` and `resolved`).
    public var parameters: ParameterValues
    /// The merge wrapper (`--merge`), for a policy that does not merge by itself.
    public var merge: MergeStrategy?
    /// Override of the averaged/weighted merge filter.
    public var mergeFilter: MergeFilter?
    /// Where evicted tokens may merge (`--merge-scope`); nil → `all`. Only for merging policies.
    public var mergeScope: MergeScope?

    /// A configuration with typed parameter values; unset parameters take their defaults.
    public init(
        _ id: String, parameters: [String: ParameterValue] = [:], merge: MergeStrategy? = nil, mergeFilter: MergeFilter? = nil,
        mergeScope: MergeScope? = nil
    ) {
        self.id = id
        var all: [String: ParameterValue] = [:]
        for p in PolicyRegistry.declaration(id)?.parameters ?? [] { if let d = p.defaultValue { all[p.name] = d } }
        for (k, v) in parameters { all[k] = v }
        self.parameters = ParameterValues(all)
        self.merge = merge
        self.mergeFilter = mergeFilter
        self.mergeScope = mergeScope
    }

    /// The configuration a result label stands for: the registry id before any `+merge` of the
    /// label (``label``'s inverse), the wrapped merge after it, and the given parameter values.
    public init(label: String, parameters: [String: ParameterValue]) {
        let parts = label.split(separator: "+", maxSplits: 1).map(String.init)
        self.init(parts.first ?? label, parameters: parameters, merge: parts.count > 1 ? MergeStrategy(rawValue: parts[1]) : nil)
    }

    /// Resolves an id (case-insensitive, with a suggestion when unknown) and parameter texts
    /// against the declaration: unknown names, bad types and out-of-range values are errors.
    public static func parse(
        _ id: String, parameters texts: [String: String] = [:], merge: MergeStrategy? = nil,
        filter: MergeFilter? = nil, scope: MergeScope? = nil
    ) throws -> PolicyConfiguration {
        let d = try PolicyRegistry.resolve(id)
        var typed: [String: ParameterValue] = [:]
        // By name, so that the error for several bad parameters names the same one every run.
        for (name, text) in texts.sorted(by: { $0.key < $1.key }) {
            guard let spec = d.parameter(name) else { throw unknownParameter(name, d) }
            typed[name] = try spec.parse(text, policy: d.id)
        }
        let c = PolicyConfiguration(d.id, parameters: typed, merge: merge, mergeFilter: filter, mergeScope: scope)
        try c.validate()
        return c
    }

    static func unknownParameter(_ name: String, _ d: PolicyDeclaration) -> PolicyError {
        let names = d.parameters.map(\.name)
        var m = "has no parameter '\(name)'"
        if let near = PolicyRegistry.suggestion(name, among: names) { m += "; did you mean '\(near)'?" }
        m += names.isEmpty ? " (it takes none)" : " (parameters: \(names.joined(separator: ", ")))"
        return PolicyError(.parameter, policy: d.id, m)
    }

    public var declaration: PolicyDeclaration? { PolicyRegistry.declaration(id) }

    /// Checks the id, every parameter value and the merge against the declaration.
    public func validate() throws {
        let d = try PolicyRegistry.resolve(id)
        for (name, v) in parameters.values {
            guard let spec = d.parameter(name) else { throw Self.unknownParameter(name, d) }
            try spec.check(v, policy: d.id)
        }
        if merge != nil, d.traits.contains(.merges) {
            throw PolicyError(.parameter, policy: id, "already merges; --merge applies to non-merging policies")
        }
        if let s = mergeScope, !merges {
            throw PolicyError(
                .parameter, policy: id, "does not merge; --merge-scope \(s.rawValue) applies to merging policies (add --merge)")
        }
    }

    /// Builds the policy.
    public func make() throws -> any CachePolicy {
        try validate()
        guard let type = PolicyRegistry.type(id) else { throw try PolicyRegistry.resolve(id).unreachable }
        var base: any CachePolicy = try type.init(parameters: parameters)
        if var m = base as? any MergeSettable, mergeFilter != nil || mergeScope != nil {
            if let f = mergeFilter { m.mergeFilter = f }
            if let s = mergeScope { m.mergeScope = s }
            base = m
        }
        guard let merge else { return base }
        return Merging(base: AnyCachePolicy(base), strategy: merge, filter: mergeFilter, scope: mergeScope, id: label)
    }

    /// The base policy results group by: the composed base (`text-prior` for `lookm`), else the id.
    public var base: String { declaration?.baseID ?? id }
    /// The merge strategy, wrapped or built in; nil for eviction only.
    public var mergeStrategy: MergeStrategy? { merge ?? declaration?.composition?.merge }
    /// True when the policy merges (wrapped or by itself).
    public var merges: Bool { merge != nil || (declaration?.traits.contains(.merges) ?? false) }
    /// The merge scope in effect (`all` unless set), or nil for eviction only: the `merge_scope` column.
    public var effectiveMergeScope: MergeScope? { merges ? (mergeScope ?? .all) : nil }
    /// The label of results and legends: the id, or `<id>+<merge>` under the wrapper, then
    /// `+scope=<scope>` under a merge scope other than `all` (`lookm+scope=modality`).
    public var label: String {
        let base = merge.map { "\(id)+\($0.rawValue)" } ?? id
        guard let s = effectiveMergeScope, s != .all else { return base }
        return base + "+scope=" + s.rawValue
    }
    public var description: String { label + (parameters.text.isEmpty ? "" : " (\(parameters.text))") }
}

extension PolicyDeclaration {
    /// Never thrown: `resolve` succeeded, so the type exists.
    var unreachable: PolicyError { PolicyError(.unknownPolicy, policy: id, "has no type in the registry") }
}

/// A policy whose merge settings `--merge-filter` (averaged/weighted filter) and `--merge-scope`
/// may override.
public protocol MergeSettable: CachePolicy {
    var mergeFilter: MergeFilter? { get set }
    var mergeScope: MergeScope? { get set }
}

extension PolicyConfiguration {
    /// The configuration a built policy corresponds to: its registry id with default parameters,
    /// or `base` under `merge` for a merge wrapper. Used where a policy value was built directly.
    public init(describing policy: any CachePolicy) {
        if let m = policy as? any MergeWrapping, PolicyRegistry.declaration(m.id) == nil {
            self.init(m.wrappedID, merge: m.strategy, mergeScope: m.scope)
        } else {
            self.init(policy.id, mergeScope: (policy as? any MergeSettable)?.mergeScope)
        }
    }
}

/// A merge wrapper around another policy (for `PolicyConfiguration(describing:)`).
public protocol MergeWrapping: CachePolicy {
    var wrappedID: String { get }
    var strategy: MergeStrategy { get }
    var scope: MergeScope? { get }
}

extension Merging: MergeWrapping {
    public var wrappedID: String { base.id }
}
