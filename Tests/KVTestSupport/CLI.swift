import Foundation
import KVTrace

/// Runs the built `kvscope` binary and captures its output.
public enum CLI {
    public static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    public static let shared = repo.deletingLastPathComponent().appendingPathComponent("shared")
    public static var sharedExists: Bool { FileManager.default.fileExists(atPath: shared.appendingPathComponent("traces").path) }

    /// A built product of the package (`kvscope`, an example): beside the test bundle, or in the
    /// repository's debug build; nil when it is not built.
    public static func product(_ name: String) -> URL? {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for dir in [here, here.deletingLastPathComponent(), repo.appendingPathComponent(".build/debug")] {
            let u = dir.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return nil
    }

    public static var binary: URL { product("kvscope") ?? repo.appendingPathComponent(".build/debug/kvscope") }

    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs `kvscope` (or `executable`) with `args` and captures its output.
    public static func run(_ args: [String], env: [String: String] = [:], cwd: URL? = nil, executable: URL? = nil) throws -> Result {
        let p = Process()
        p.executableURL = executable ?? binary
        p.arguments = args
        if let cwd { p.currentDirectoryURL = cwd }
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env { e[k] = v }
        p.environment = e
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let r = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: r, as: UTF8.self))
    }

    public static func tempDir() -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-cli-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}
