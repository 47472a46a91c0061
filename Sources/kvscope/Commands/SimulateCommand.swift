import ArgumentParser

// Placeholder until the policies land.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "simulate", abstract: "Replay a cache policy on a trace (not yet available).", shouldDisplay: false)
    func run() throws { throw CLIError("simulate is not available yet") }
}
