import ArgumentParser
import Foundation
import KVPlot
import KVPolicies
import KVTrace

/// `--policies`, `--budget`, `--fidelity`: the policies a retention-type figure replays.
struct RenderPolicyOptions: ParsableArguments {
    @Option(name: .customLong("policies"), help: ArgumentHelp("Comma-separated policy ids (see `kvscope policies`).", valueName: "a,b,…"))
    var policies: ListArgument<String>?
    @Option(name: .customLong("budget"), help: "Fraction of the prefill kept, 0 < b ≤ 1 (C = int(P·b), half of it the recent window).")
    var budget: Double = 0.2
    @Option(name: .customLong("fidelity"), help: "code: the official LOOK-M classes bit for bit; intended: nominal budget.")
    var fidelity: Fidelity = .code
    @Option(name: .customLong("param"), parsing: .singleValue, help: ArgumentHelp(
        "A policy hyper-parameter, [id.]key=value (repeatable); without id it applies to every listed policy that has the parameter, e.g. --param window=8.",
        valueName: "[id.]key=value"))
    var params: [ParamArgument] = []

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
        return try policies.values.map { id in
            do { return try PolicyRegistry.resolve(id).id } catch let e as PolicyError { throw ValidationError("--policies: '\(id)': \(e.message)") }
        }
    }

    /// Checks the ids and the budget (ArgumentParser runs it for every command that has the group;
    /// a command that needs `--policies` also calls `ids(required: true)`).
    func validate() throws {
        _ = try ids(required: false)
        guard budget.isFinite, budget > 0, budget <= 1 else { throw ValidationError("--budget must be in (0, 1], got \(budget)") }
    }

    var spec: BudgetSpec { .fraction(budget, recentShare: 0.5) }
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
    static func decide(_ ids: [String], source: any TraceSource, layers: [Int], policy: RenderPolicyOptions,
                       progress label: String = "deciding") throws -> [PolicyRun] {
        let configurations = try ids.map { try PolicyConfiguration.parse($0, parameters: policy.parameters(for: $0)) }
        return try decide(configurations, source: source, layers: layers, budget: policy.spec, options: policy.options, progress: label)
    }

    /// Runs each configured policy on each layer at `budget`; runs are named by the configuration's label.
    static func decide(_ configurations: [PolicyConfiguration], source: any TraceSource, layers: [Int], budget: BudgetSpec,
                       options: KVPolicies.PolicyOptions, progress label: String = "deciding") throws -> [PolicyRun] {
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
