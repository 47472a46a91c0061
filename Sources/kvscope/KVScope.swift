import ArgumentParser
import Foundation
import KVPolicies
import KVTrace

/// The `kvscope` command-line tool.
@main
struct KVScope: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "kvscope",
        abstract: "Study KV-cache compression offline from recorded attention traces.",
        discussion: """
            KVScope reads attention traces (attn-trace v1 folders, or bare .npy/.npz/.safetensors \
            arrays with mapping flags), replays LOOK-M and baseline cache policies at chosen budgets, \
            measures what each keeps and loses, and draws publication-quality figures.

            Bad input gives one line naming the file or flag and what is wrong, and exit status 2.
            """,
        version: version,
        subcommands: [InfoCommand.self, SynthCommand.self, SimulateCommand.self, PoliciesCommand.self, RenderCommand.self, SweepCommand.self,
                      CollectCommand.self, SlurmCommand.self]
    )

    /// Runs the command; every failure becomes one line on stderr and exit status 2.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is CleanExit { exit(withError: error) }
            var message: String
            switch error {
            case let e as TraceError: message = e.description
            case let e as CLIError: message = e.description
            case let e as PolicyError: message = e.description
            default: message = Self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            }
            // `render heatmap --grid` drew every head before the bare-array flags came to it.
            if message.hasPrefix("Missing value for '--grid"), CommandLine.arguments.contains("heatmap") {
                message += " (the patch grid of bare arrays; every head as small multiples is --all-heads)"
            }
            FileHandle.standardError.write(Data("kvscope: error: \(message)\n".utf8))
            Foundation.exit(2)
        }
    }
}

/// A command-line failure that is not a trace error: one line, exit status 2.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}

/// Writes one line to stderr.
func printError(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }
