import ArgumentParser
import KVPolicies

/// `--policy` and the run options every policy may read (`--fidelity`, `--gqa`, `--merge`, …).
/// Named `PolicyArguments` so that it does not shadow `KVPolicies.PolicyOptions`.
struct PolicyArguments: ParsableArguments {
    @Option(help: ArgumentHelp("The policy id (see `kvscope policies`).", valueName: "id"))
    var policy: String
    @Option(
        help: "code: the official LOOK-M classes bit for bit, quirks included; intended: nominal budget, paired merge sources.")
    var fidelity: Fidelity = .code
    @Option(help: "How the scores of a KV head's query heads are combined.")
    var gqa: GQAReduction = .mean
    @Option(help: "Merge the evicted tokens of any non-merging policy into its kept ones.")
    var merge: MergeStrategy?
    @Option(
        help: "Override the averaged/weighted merge filter (default: rank-shared in code, per-head in intended).")
    var mergeFilter: MergeFilter?
    @Option(
        help:
            "Where evicted tokens may merge: all (any kept token, the official code), modality (kept tokens of their own modality) or image (of their own image); a token with no such kept token is dropped. Merging policies only."
    )
    var mergeScope: MergeScope?
    @Option(help: ArgumentHelp("Seed of the random policy.", valueName: "n"))
    var seed: UInt64 = 0
    @Flag(help: "Keep text-only prompts whole under the text prior, as the official pipeline does.")
    var imageGate = false
    @Option(
        name: .customLong("param"),
        help: ArgumentHelp("A policy hyper-parameter, key=value (repeatable), e.g. --param window=64.", valueName: "key=value"))
    var params: [ParamArgument] = []

    func validate() throws { _ = try configuration() }

    /// `--param` pairs as a dictionary (a repeated name, or one scoped to another policy, is an error).
    func parameters() throws -> [String: String] {
        var out: [String: String] = [:]
        for p in params {
            if let s = p.scope, s != (try? PolicyRegistry.resolve(policy).id) {
                throw ValidationError("--param \(p): not a parameter of '\(policy)'")
            }
            guard out[p.name] == nil else { throw ValidationError("--param: '\(p.name)' is given twice") }
            out[p.name] = p.value
        }
        return out
    }

    var options: KVPolicies.PolicyOptions {
        KVPolicies.PolicyOptions(fidelity: fidelity, gqa: gqa, seed: seed, imageGate: imageGate)
    }

    /// The configured policy the flags describe (a `PolicyError` names a bad id or parameter).
    func configuration() throws -> PolicyConfiguration {
        try PolicyConfiguration.parse(policy, parameters: parameters(), merge: merge, filter: mergeFilter, scope: mergeScope)
    }

    /// Builds the policy.
    func make() throws -> any CachePolicy { try configuration().make() }
}

extension ListArgument<String> {
    /// The `--policies` ids resolved against the registry (case-insensitive); an unknown one is
    /// the error "--policies: 'id': …" with the registry's suggestion.
    func resolvedPolicyIDs() throws -> [String] {
        try values.map { id in
            do { return try PolicyRegistry.resolve(id).id } catch let e as PolicyError {
                throw ValidationError("--policies: '\(id)': \(e.message)")
            }
        }
    }
}

extension Fidelity: ExpressibleByArgument {}
extension GQAReduction: ExpressibleByArgument {}
extension MergeStrategy: ExpressibleByArgument {}
extension MergeFilter: ExpressibleByArgument {}
extension MergeScope: ExpressibleByArgument {}
