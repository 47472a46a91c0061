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
        subcommands: [
            InfoCommand.self, SynthCommand.self, SimulateCommand.self, PoliciesCommand.self, RenderCommand.self, SweepCommand.self,
            ExploreCommand.self, ReportCommand.self, CollectCommand.self, SlurmCommand.self, MetricsCommand.self,
            CompareCommand.self, HelpExamplesCommand.self,
        ]
    )

    /// Runs the command; every failure becomes one line on stderr and exit status 2. The line names
    /// the file or flag at fault; control characters in it are escaped (a name read from a file
    /// cannot split it), and no `ExitCode(…)` or NSError text reaches the user.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is CleanExit { exit(withError: error) }
            if error is AlreadyReported { Foundation.exit(2) }
            let message = oneLine(error).escapedForMessage
            FileHandle.standardError.write(Data("kvscope: error: \(message)\n".utf8))
            Foundation.exit(2)
        }
    }

    /// The one-line text of any error that ends a command.
    static func oneLine(_ error: Error) -> String {
        switch error {
        case let e as TraceError: return e.description
        case let e as CLIError: return e.description
        case let e as PolicyError: return e.description
        case let e as CocoaError: return fileSystemMessage(e)
        case let e as NSError where e.domain == NSCocoaErrorDomain || e.domain == NSPOSIXErrorDomain:
            return fileSystemMessage(CocoaError(CocoaError.Code(rawValue: e.code), userInfo: e.userInfo))
        case let e as ExitCode: return "failed with exit status \(e.rawValue)"
        default: break
        }
        var message = Self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        // "Unknown option '--foo'. Did you mean '--gqa'?": keep the suggestion only when it is close.
        if message.hasPrefix("Unknown option '"), let r = message.range(of: ". Did you mean '") {
            let unknown = message.split(separator: "'").dropFirst().first.map(String.init) ?? ""
            let offered = String(message[r.upperBound...].prefix { $0 != "'" })
            if PolicyRegistry.suggestion(unknown, among: [offered]) == nil { message = String(message[..<r.lowerBound]) }
        }
        // `--budget -1`: ArgumentParser reads "-1" as a flag and reports a missing value.
        if message.hasPrefix("Missing value for '"), let flag = message.split(separator: "'").dropFirst().first {
            let name = String(flag.split(separator: " ").first ?? flag)
            let args = CommandLine.arguments
            if let i = args.firstIndex(of: name), i + 1 < args.count, Double(args[i + 1]) != nil {
                message = "\(name): \(args[i + 1]) is out of range (negative values are not accepted)"
            }
        }
        // `render heatmap --grid` drew every head before the bare-array flags came to it.
        if message.hasPrefix("Missing value for '--grid"), CommandLine.arguments.contains("heatmap") {
            message += " (the patch grid of bare arrays; every head as small multiples is --all-heads)"
        }
        if message.contains("Error Domain=") { message = "\(type(of: error)): an unexpected system error" }
        return message
    }

    /// `path: cannot write: Permission denied`, from Foundation's file errors (never the NSError dump).
    static func fileSystemMessage(_ e: CocoaError) -> String {
        let path = (e.userInfo[NSFilePathErrorKey] as? String) ?? (e.userInfo[NSURLErrorKey] as? URL)?.path ?? "a file"
        var reason: String
        if let u = e.userInfo[NSUnderlyingErrorKey] as? NSError, u.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(u.code)))
        } else {
            switch e.code {
            case .fileNoSuchFile, .fileReadNoSuchFile: reason = "no such file or folder"
            case .fileWriteNoPermission, .fileReadNoPermission: reason = "permission denied"
            case .fileWriteOutOfSpace: reason = "no space left on the device"
            case .fileWriteFileExists: reason = "already exists"
            case .fileWriteVolumeReadOnly: reason = "read-only file system"
            default: reason = "file system error \(e.code.rawValue)"
            }
        }
        let verb = e.code.rawValue >= 512 ? "cannot write" : "cannot read"
        return "\(path): \(verb): \(reason)"
    }
}

/// Thrown after a command has already printed its error lines (one per problem): exit status 2, nothing more.
struct AlreadyReported: Error {}

/// A command-line failure that is not a trace error: one line, exit status 2.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}

/// Writes one line to stderr.
func printError(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }
