import ArgumentParser
import KVPolicies

/// `kvscope policies`: every policy id with a one-line description and its parameters.
struct PoliciesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policies",
        abstract: "List every cache policy id with a one-line description and its parameters.",
        discussion: "Set a parameter with --param key=value on simulate. Every non-merging policy also takes --merge pivotal|average|weighted."
    )

    @Flag(name: .customLong("ids"), help: "Print the ids only, one per line.")
    var idsOnly = false

    func run() throws {
        if idsOnly {
            for e in PolicyRegistry.entries { print(e.id) }
            return
        }
        let width = PolicyRegistry.ids.map(\.count).max() ?? 0
        for e in PolicyRegistry.entries {
            var line = e.id.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + e.summary
            if let m = e.officialMode { line += " [official kv_mode \(m)]" }
            print(line)
            let pad = String(repeating: " ", count: width + 2)
            var details = "needs: \(e.requirements)"
            if e.usesRecent { details += "; uses the recent window r" }
            if e.merges { details += "; merges" }
            print(pad + details)
            for p in e.parameters {
                print(pad + "--param \(p.name)=\(p.defaultValue.isEmpty ? "…" : p.defaultValue)  \(p.help)")
            }
        }
        print("")
        print("Run options (all policies): --fidelity code|intended (default code), --gqa mean|max|sum (default mean), --seed N,")
        print("--merge pivotal|average|weighted and --merge-filter rank-shared|per-head. Ties go to the lowest position.")
    }
}
