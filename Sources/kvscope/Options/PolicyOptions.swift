import ArgumentParser
import KVPolicies

/// `--policy` and the run options every policy may read (`--fidelity`, `--gqa`, `--merge`, …).
/// Named `PolicyArguments` so that it does not shadow `KVPolicies.PolicyOptions`.
struct PolicyArguments: ParsableArguments {
    @Option(name: .customLong("policy"), help: ArgumentHelp("The policy id (see `kvscope policies`).", valueName: "id"))
    var policy: String
    @Option(name: .customLong("fidelity"), help: "code: the official LOOK-M classes bit for bit, quirks included; intended: nominal budget, paired merge sources.")
    var fidelity: Fidelity = .code
    @Option(name: .customLong("gqa"), help: "How the scores of a KV head's query heads are combined.")
    var gqa: GQAReduction = .mean
    @Option(name: .customLong("merge"), help: "Merge the evicted tokens of any non-merging policy into its kept ones.")
    var merge: MergeStrategy?
    @Option(name: .customLong("merge-filter"), help: "Override the averaged/weighted merge filter (default: rank-shared in code, per-head in intended).")
    var mergeFilter: MergeFilter?
    @Option(name: .customLong("seed"), help: "Seed of the random policy.")
    var seed: UInt64 = 0
    @Flag(name: .customLong("image-gate"), help: "Keep text-only prompts whole under the text prior, as the official pipeline does.")
    var imageGate = false
    @Option(name: .customLong("param"), parsing: .singleValue,
            help: ArgumentHelp("A policy hyper-parameter, key=value (repeatable), e.g. --param window=64.", valueName: "key=value"))
    var params: [String] = []

    func validate() throws {
        guard let e = PolicyRegistry.entry(policy) else {
            throw ValidationError("--policy \(policy): unknown id (known: \(PolicyRegistry.ids.joined(separator: ", ")))")
        }
        if merge != nil, e.merges { throw ValidationError("--merge: \(policy) already merges") }
        _ = try parameters()
    }

    /// `--param` pairs as a dictionary.
    func parameters() throws -> [String: String] {
        var out: [String: String] = [:]
        for p in params {
            let kv = p.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, !kv[0].isEmpty else { throw ValidationError("--param: '\(p)' is not key=value") }
            out[kv[0]] = kv[1]
        }
        return out
    }

    var options: KVPolicies.PolicyOptions {
        KVPolicies.PolicyOptions(fidelity: fidelity, gqa: gqa, seed: seed, imageGate: imageGate)
    }

    /// Builds the policy (a `PolicyError` for a bad parameter value).
    func make() throws -> any CachePolicy {
        try PolicyRegistry.make(policy, parameters: parameters(), merge: merge, filter: mergeFilter)
    }
}

extension Fidelity: ExpressibleByArgument {}
extension GQAReduction: ExpressibleByArgument {}
extension MergeStrategy: ExpressibleByArgument {}
extension MergeFilter: ExpressibleByArgument {}
