import ArgumentParser
import Foundation
import KVPolicies
import KVSimulator

/// A comma-separated list flag value (`--budgets 0.1,0.2`), each element parsed as `Element`.
struct ListArgument<Element: ExpressibleByArgument>: ExpressibleByArgument {
    var values: [Element]
    init(_ values: [Element]) { self.values = values }
    init?(argument: String) {
        let parts = argument.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !parts.isEmpty, !parts.contains(where: \.isEmpty) else { return nil }
        var out: [Element] = []
        for p in parts {
            guard let v = Element(argument: p) else { return nil }
            out.append(v)
        }
        values = out
    }
    var defaultValueDescription: String { values.map { "\($0)" }.joined(separator: ",") }
}

/// A merge axis value: `none` or a strategy (`avg` is accepted for `average`).
enum MergeChoice: Hashable, ExpressibleByArgument, CustomStringConvertible {
    case none
    case strategy(MergeStrategy)
    init?(argument: String) {
        switch argument.lowercased() {
        case "none": self = .none
        case "avg": self = .strategy(.average)
        default:
            guard let s = MergeStrategy(rawValue: argument.lowercased()) else { return nil }
            self = .strategy(s)
        }
    }
    var strategy: MergeStrategy? { if case let .strategy(s) = self { s } else { nil } }
    var description: String { strategy?.rawValue ?? "none" }
}

/// The axes of a sweep or explore grid: policies × merge × merge scope × parameter values × fidelity × budgets.
/// Every combination of the given values is run; a policy takes only the parameters it declares.
struct GridOptions: ParsableArguments {
    @Option(name: .customLong("policies"), help: ArgumentHelp("Policy ids (see `kvscope policies`).", valueName: "a,b,c"))
    var policies: ListArgument<String>
    @Option(
        name: .customLong("budgets"),
        help: ArgumentHelp("Budget fractions b: C = int(P·b), r = int(C·s) (the default budget axis).", valueName: "b1,b2,…"))
    var budgets: ListArgument<Double>?
    @Option(name: .customLong("tokens"), help: ArgumentHelp("Absolute budgets N: C = min(N, P), r = int(C·s).", valueName: "N1,N2,…"))
    var tokens: ListArgument<Int>?
    @Option(
        name: .customLong("hh-ratio"),
        help: ArgumentHelp("The official pair, crossed with --recent-ratio: hh = int(P·x).", valueName: "x1,x2,…"))
    var hhRatio: ListArgument<Double>?
    @Option(
        name: .customLong("recent-ratio"),
        help: ArgumentHelp("The official pair, crossed with --hh-ratio: r = int(P·y).", valueName: "y1,y2,…"))
    var recentRatio: ListArgument<Double>?
    @Option(
        name: .customLong("recent-share"),
        help: ArgumentHelp("Shares s of C spent on the recent window, with --budgets or --tokens (default 0.5).", valueName: "s1,s2,…"))
    var recentShare: ListArgument<Double>?
    @Option(
        name: .customLong("merge"),
        help: ArgumentHelp("Merge axis for non-merging policies: none, pivotal, average (avg), weighted.", valueName: "none,pivotal,…"))
    var merge: ListArgument<MergeChoice>?
    @Option(
        name: .customLong("merge-scope"),
        help: ArgumentHelp(
            "Merge-scope axis of the merging policies: all (the official code), modality, image. Eviction-only policies run once, without it.",
            valueName: "all,modality,…"))
    var mergeScope: ListArgument<MergeScope>?
    @Option(
        name: .customLong("param"),
        help: ArgumentHelp(
            "A parameter axis, [id.]name=v1,v2,… (repeatable): every listed policy that declares name runs each value, e.g. --param window=16,32.",
            valueName: "[id.]name=v,…"))
    var params: [ParamArgument] = []
    @Option(name: .customLong("fidelity"), help: ArgumentHelp("code, intended, or both.", valueName: "code,intended"))
    var fidelity: ListArgument<Fidelity> = ListArgument([.code])

    static let defaultBudgets = [0.05, 0.1, 0.2, 0.3, 0.5]

    func validate() throws { _ = try combinations() }

    /// The budget axis.
    func budgetSpecs() throws -> [BudgetSpec] {
        let forms = [budgets != nil, tokens != nil, hhRatio != nil || recentRatio != nil].filter { $0 }.count
        guard forms <= 1 else { throw ValidationError("use one budget axis: --budgets, --tokens, or --hh-ratio with --recent-ratio") }
        if (hhRatio == nil) != (recentRatio == nil) { throw ValidationError("--hh-ratio and --recent-ratio go together") }
        if recentShare != nil, hhRatio != nil { throw ValidationError("--recent-share applies to --budgets or --tokens only") }
        let shares = recentShare?.values ?? [0.5]
        var specs: [BudgetSpec] = []
        if let x = hhRatio?.values, let y = recentRatio?.values {
            for a in x { for b in y { specs.append(.ratios(heavy: a, recent: b)) } }
        } else if let n = tokens?.values {
            for s in shares { for t in n { specs.append(.tokens(t, recentShare: s)) } }
        } else {
            for s in shares { for b in budgets?.values ?? Self.defaultBudgets { specs.append(.fraction(b, recentShare: s)) } }
        }
        for s in specs {
            if let p = s.problem {
                throw ValidationError(
                    p.replacingOccurrences(of: "--budget ", with: "--budgets ").replacingOccurrences(of: "--tokens ", with: "--tokens "))
            }
        }
        return specs
    }

    /// Parameter axes: per policy id (or every policy, key ""), name → value texts.
    func parameterAxes(for ids: [String]) throws -> [(scope: String?, name: String, values: [String])] {
        var out: [(String?, String, [String])] = []
        for p in params {
            let values = try p.values(flag: "--param")
            let (scope, name) = (p.scope, p.name)
            let targets = ids.filter(p.applies(to:))
            let declaring = targets.filter { PolicyRegistry.declaration($0)?.parameter(name) != nil }
            if declaring.isEmpty {
                let all = Set(targets.flatMap { PolicyRegistry.declaration($0)?.parameters.map(\.name) ?? [] }).sorted()
                let near = PolicyRegistry.suggestion(name, among: all).map { "; did you mean '\($0)'?" } ?? ""
                throw ValidationError(
                    "--param \(name): no listed policy declares it\(near) (parameters of the listed policies: \(all.isEmpty ? "none" : all.joined(separator: ", ")))"
                )
            }
            for id in declaring {
                let spec = PolicyRegistry.declaration(id)!.parameter(name)!
                for v in values {
                    do { _ = try spec.parse(v, policy: id) } catch let e as PolicyError {
                        throw ValidationError("--param \(name): \(e.message)")
                    }
                }
            }
            if out.contains(where: { $0.0 == scope && $0.1 == name }) { throw ValidationError("--param \(name): given twice") }
            out.append((scope, name, values))
        }
        return out
    }

    /// The policy ids, resolved (case-insensitive, with a suggestion for an unknown one).
    func policyIDs() throws -> [String] {
        let ids = try policies.resolvedPolicyIDs()
        if let dup = ids.first(where: { id in ids.filter { $0 == id }.count > 1 }) {
            throw ValidationError("--policies: '\(dup)' is listed twice")
        }
        return ids
    }

    /// Every combination, in order: policy, merge, merge scope, parameter values, fidelity, budget.
    func combinations() throws -> [Combination] {
        let ids = try policyIDs()
        let specs = try budgetSpecs()
        let axes = try parameterAxes(for: ids)
        let merges = merge?.values ?? [.none]
        let scopes: [MergeScope?] = mergeScope?.values ?? [nil]
        var out: [Combination] = []
        for id in ids {
            let d = PolicyRegistry.declaration(id)!
            let mine = axes.filter { ($0.scope == nil || $0.scope == id) && d.parameter($0.name) != nil }
            var settings: [[String: String]] = [[:]]
            for axis in mine { settings = settings.flatMap { s in axis.values.map { v in s.merging([axis.name: v]) { $1 } } } }
            for m in merges {
                if m.strategy != nil, d.traits.contains(.merges) { continue }
                let merging = m.strategy != nil || d.traits.contains(.merges)
                for scope in merging ? scopes : [nil] {
                    for s in settings {
                        let config: PolicyConfiguration
                        do { config = try PolicyConfiguration.parse(id, parameters: s, merge: m.strategy, scope: scope) } catch let e
                            as PolicyError
                        {
                            throw ValidationError("--param: \(e.message)")
                        }
                        for f in fidelity.values {
                            for b in specs { out.append(Combination(config, options: KVPolicies.PolicyOptions(fidelity: f), budget: b)) }
                        }
                    }
                }
            }
        }
        guard !out.isEmpty else {
            throw ValidationError("--merge: no listed policy takes these merges (merging policies run only with none)")
        }
        if mergeScope != nil, !out.contains(where: { $0.configuration.merges }) {
            throw ValidationError("--merge-scope: no listed policy merges (list a merging policy such as lookm, or add --merge)")
        }
        return out
    }
}
