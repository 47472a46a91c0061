import ArgumentParser
import Foundation
import KVPlot
import KVPolicies
import KVTrace

/// `kvscope render merges`: arcs from each evicted token to the slot it merged into.
struct MergesCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample("render merges Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policy lookm --budget 0.2 --layer 3 --head 0"),
        HelpExample(
            "render merges Examples/traces/smollm2-layer3-bare.npz --prefill-len 161 --layer 3 --policy lookm --tokens 32",
            note: "bare arrays"),
    ]

    static let configuration = CommandConfiguration(
        commandName: "merges",
        abstract: "Merge view of one layer and KV head: arcs from each evicted position to the kept slot it merged into.",
        discussion: """
            Arcs are coloured by the cosine similarity between the evicted key and its target's key \
            (viridis). Kept positions are ticks below the axis; evicted tokens that the merge filter left \
            out are grey crosses. The policy must merge (lookm, lookm-avg, …, or any id with --merge).

            --layer N picks the layer drawn (required when the trace records several layers). For bare \
            arrays of one layer (HQT) it is also the layer the arrays hold; without it they are layer 0.
            """ + "\n\n" + HelpExample.section(examples)
    )

    @OptionGroup var trace: TraceOptions
    @Option(name: .customLong("policy"), help: ArgumentHelp("A merging policy id.", valueName: "id"))
    var policyID: String = "lookm"
    @Option(name: .customLong("merge"), help: "Merge the evicted tokens of a non-merging policy.")
    var merge: MergeStrategy?
    @Option(name: .customLong("merge-scope"), help: "Where evicted tokens may merge: all (the official code), modality, image.")
    var mergeScope: MergeScope?
    /// The budget forms of `simulate` (default `--budget 0.2`).
    @OptionGroup var budgetForms: BudgetOptions
    @Option(name: .customLong("fidelity"), help: "code or intended.")
    var fidelity: Fidelity = .code
    @Option(name: .customLong("head"), help: "KV head g.")
    var head: Int = 0
    @Option(name: .customLong("range"), help: ArgumentHelp("Zoom to positions a:b.", valueName: "a:b"))
    var range: RangeArgument?
    @OptionGroup var output: RenderOutputOptions

    func validate() throws {
        let e: PolicyDeclaration
        do { e = try PolicyRegistry.resolve(policyID) } catch let err as PolicyError {
            throw ValidationError("--policy \(policyID): \(err.message)")
        }
        if merge != nil, e.traits.contains(.merges) { throw ValidationError("--merge: \(policyID) already merges") }
        if merge == nil, !e.traits.contains(.merges) {
            throw ValidationError("--policy \(policyID) does not merge: pick a merging policy or add --merge pivotal")
        }
        guard head >= 0 else { throw ValidationError("--head must be ≥ 0, got \(head)") }
    }

    func run() throws {
        let (source, layerIndex) = try trace.openOneLayer()
        let info = source.info
        guard head < info.shape.kvHeads else {
            throw CLIError("--head \(head): the trace has \(info.shape.kvHeads) KV heads (0..<\(info.shape.kvHeads))")
        }
        let P = info.shape.prefillLen
        let zoom = try range.map { try $0.resolve(flag: "--range", limit: P) }
        let configuration = try PolicyConfiguration.parse(policyID, merge: merge, scope: mergeScope)
        let policy = try configuration.make()
        let budget = budgetForms.spec(default: RenderPolicyOptions.defaultBudget)
        let ctx = try LayerContext(
            trace: source, layer: layerIndex, budget: budget,
            options: KVPolicies.PolicyOptions(fidelity: fidelity))
        let d = try policy.decide(ctx.named(policy.id))
        guard head < d.heads.count else { throw CLIError("--head \(head): the decision has \(d.heads.count) KV heads") }
        let hd = d.heads[head]
        let arcs = hd.merges.map { MergeArc(source: $0.source, target: hd.kept[$0.slot], value: $0.cosine) }
        let sources = Set(hd.merges.map(\.source))
        let excluded = hd.evicted.filter { !sources.contains($0) }
        let lo = min(0, arcs.map(\.value).min() ?? 0)
        var sub = [
            "layer \(layerIndex), KV head \(head); C = \(d.nominal), C_act = \(hd.kept.count), \(hd.evicted.count) evicted: \(arcs.count) merged, \(excluded.count) dropped; fidelity \(fidelity.rawValue)"
        ]
        sub.append(
            "arcs: evicted position → position of the kept slot it merged into, coloured by key cosine" + (lo < 0 ? " (scale −1…1)" : ""))
        if let z = zoom { sub.append("positions \(z.lowerBound)..<\(z.upperBound)") }
        if let note = RenderSupport.pseudoNote(info) { sub.append(note) }
        let fig = MergeArcsFigure(
            tokens: P, bands: RenderSupport.bands(info, upTo: P), kept: hd.kept, merges: arcs, excluded: excluded, range: zoom,
            normalization: .linear(lo ... 1),
            title: output.title(
                "\(RenderSupport.traceTitle(info)): where do \(configuration.label)'s evicted tokens merge at budget \(budget.figureText)?"),
            subtitle: sub,
            size: Size(660, 300))
        try output.write(fig.build(), defaultName: "merges-\(info.name)-\(configuration.label)-L\(layerIndex)-G\(head)")
    }
}
