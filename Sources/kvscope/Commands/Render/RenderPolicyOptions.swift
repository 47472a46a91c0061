import ArgumentParser
import Foundation
import KVPlot
import KVPolicies
import KVTrace

/// `--policies`, the budget forms of `simulate` (``BudgetOptions``: `--budget`, `--tokens`,
/// `--hh-ratio`/`--recent-ratio`, `--recent-share`; default `--budget 0.2`), `--fidelity`, `--param`:
/// the policies a retention-type figure replays.
struct RenderPolicyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Comma-separated policy ids (see `kvscope policies`).", valueName: "a,b,…"))
    var policies: ListArgument<String>?
    @OptionGroup var budgetForms: BudgetOptions
    @Option(help: "code: the official LOOK-M classes bit for bit; intended: nominal budget.")
    var fidelity: Fidelity = .code
    @Option(
        name: .customLong("param"),
        help: ArgumentHelp(
            "A policy hyper-parameter, [id.]key=value (repeatable); without id it applies to every listed policy that has the parameter, e.g. --param window=8.",
            valueName: "[id.]key=value"))
    var params: [ParamArgument] = []
    @Option(
        help: ArgumentHelp(
            "Merge scopes of the merging policies, each drawn as its own policy: all (the official code), modality, image.",
            valueName: "all,modality,…"))
    var mergeScope: ListArgument<MergeScope>?

    /// The configurations drawn: each id, and each merging one under every `--merge-scope`.
    func configurations(_ ids: [String]) throws -> [PolicyConfiguration] {
        let scopes: [MergeScope?] = mergeScope?.values ?? [nil]
        let out = try ids.flatMap { id -> [PolicyConfiguration] in
            let merging = PolicyRegistry.declaration(id)?.traits.contains(.merges) ?? false
            return try (merging ? scopes : [nil]).map { try PolicyConfiguration.parse(id, parameters: parameters(for: id), scope: $0) }
        }
        if mergeScope != nil, !out.contains(where: \.merges) {
            throw ValidationError("--merge-scope: no listed policy merges (list a merging policy such as lookm)")
        }
        return out
    }

    /// The `--param` overrides for policy `id`.
    func parameters(for id: String) throws -> [String: String] {
        let known = Set(PolicyRegistry.declaration(id)?.parameters.map(\.name) ?? [])
        var out: [String: String] = [:]
        for p in params where p.scope == id || (p.scope == nil && known.contains(p.name)) { out[p.name] = p.value }
        return out
    }

    /// "window=8" lines for the subtitle, or nil.
    var paramNote: String? { params.isEmpty ? nil : "parameters: " + params.map(\.description).joined(separator: ", ") }

    /// The policy ids, checked against the registry.
    func ids(required: Bool) throws -> [String] {
        guard let policies else {
            if required { throw ValidationError("give --policies a,b,… (see `kvscope policies`)") }
            return []
        }
        return try policies.resolvedPolicyIDs()
    }

    /// The figures' budget when no budget flag is given.
    static let defaultBudget = 0.2

    /// Checks the ids (ArgumentParser runs it for every command that has the group; a command that
    /// needs `--policies` also calls `ids(required: true)`; the budget forms check themselves).
    func validate() throws {
        _ = try ids(required: false)
    }

    /// The budget replayed: the flags' (as `simulate` reads them), else `--budget 0.2`.
    var spec: BudgetSpec { budgetForms.spec(default: Self.defaultBudget) }
    var options: KVPolicies.PolicyOptions { KVPolicies.PolicyOptions(fidelity: fidelity) }
}

/// One policy's decisions over the chosen layers.
struct PolicyRun {
    var id: String
    /// Its look in figures, from its declaration.
    var style: PolicyStyle
    var decisions: [LayerDecision]

    /// Mean `C_act` over layers and KV heads.
    var meanActual: Double {
        let all = decisions.flatMap(\.actual)
        return all.isEmpty ? 0 : Double(all.reduce(0, +)) / Double(all.count)
    }
    /// The nominal `C` (the first layer's; the same in every layer for uniform budgets).
    var nominal: Int { decisions.first?.nominal ?? 0 }

    /// "lookm  C = 32  C_act = 45.0  code".
    func label(fidelity: Fidelity) -> String {
        "\(id)   C = \(nominal)   C_act = \(RenderSupport.fmt(meanActual))   fidelity \(fidelity.rawValue)"
    }
}

extension RenderSupport {
    /// Runs each policy on each layer at the end of prefill. Each layer is read once.
    static func decide(
        _ ids: [String], source: any TraceSource, layers: [Int], policy: RenderPolicyOptions,
        progress label: String = "deciding"
    ) throws -> [PolicyRun] {
        return try decide(
            try policy.configurations(ids), source: source, layers: layers, budget: policy.spec, options: policy.options, progress: label)
    }

    /// Runs each configured policy on each layer at `budget`; runs are named by the configuration's label.
    static func decide(
        _ configurations: [PolicyConfiguration], source: any TraceSource, layers: [Int], budget: BudgetSpec,
        options: KVPolicies.PolicyOptions, progress label: String = "deciding"
    ) throws -> [PolicyRun] {
        let policies = try configurations.map { try $0.make() }
        var runs = configurations.map { PolicyRun(id: $0.label, style: .of($0), decisions: []) }
        let bar = Progress(total: layers.count * max(1, configurations.count), label: label)
        defer { bar.finish() }
        for l in layers {
            let ctx = try LayerContext(trace: source, layer: l, budget: budget, options: options)
            for (i, p) in policies.enumerated() {
                runs[i].decisions.append(try p.decide(ctx.named(p.id)))
                bar.step()
            }
        }
        return runs
    }
}
