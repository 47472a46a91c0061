import ArgumentParser

// Placeholder until the policies land.
struct PoliciesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "policies", abstract: "List cache policies (not yet available).", shouldDisplay: false)
    func run() throws { throw CLIError("policies is not available yet") }
}
