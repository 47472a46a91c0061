import Foundation
import Testing

/// Every example in every `--help` text runs, from the repository, on files the repository ships.
@Suite("--help examples", .serialized)
struct HelpExamplesTests {
    static let commands: [[String]] = [
        ["info"], ["synth"], ["simulate"], ["policies"], ["sweep"], ["render", "heatmap"], ["render", "retention"],
        ["render", "patches"], ["render", "curves"], ["render", "modality"], ["render", "merges"],
    ]

    /// The example command lines of a help text: lines (joined across trailing `\`) that start
    /// with `kvscope ` after an optional `Example…:` label.
    static func examples(_ help: String) -> [String] {
        var out: [String] = []
        var pending: String?
        for raw in help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            var line = raw.trimmingCharacters(in: .whitespaces)
            if let p = pending { line = p + " " + line; pending = nil }
            if line.hasSuffix("\\") { pending = String(line.dropLast()); continue }
            if let r = line.range(of: #"^Example[^:]*:\s*"#, options: .regularExpression) { line.removeSubrange(r) }
            guard line.hasPrefix("kvscope "), !line.contains("<") else { continue }
            out.append(line)
        }
        return out
    }

    @Test("every help example names only shipped inputs and runs", arguments: commands)
    func examplesRun(_ command: [String]) throws {
        let help = try CLI.run(command + ["--help"])
        #expect(help.status == 0)
        let out = CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        for example in Self.examples(help.stdout) {
            // Run only the kvscope part of pipelines; outputs go to a temporary folder.
            let cmd = example.components(separatedBy: " | ").first!.components(separatedBy: " && ")
            for part in cmd {
                var args = part.split(separator: " ").map(String.init).dropFirst().map { a -> String in
                    a.hasPrefix("Output/") || a.hasPrefix("docs/") ? out.appendingPathComponent(a).path : a
                }
                // Inputs the example names must exist in the repository.
                for a in args where (a.hasPrefix("Examples/") || a.hasSuffix(".npz") || a.hasSuffix(".safetensors")) && !a.hasPrefix(out.path) {
                    #expect(FileManager.default.fileExists(atPath: CLI.repo.appendingPathComponent(a).path), "\(command): \(a) is not shipped")
                }
                if args.first == "render" || args.first == "sweep" || args.first == "synth" || args.first == "simulate" {
                    if !args.contains(where: { ["-o", "--output", "--out", "--save-cache"].contains($0) }), args.first == "render" {
                        args += ["-o", out.appendingPathComponent("fig-\(UUID().uuidString).png").path]
                    }
                }
                for i in args.indices where ["-o", "--output", "--out", "--save-cache"].contains(args[i]) && i + 1 < args.count
                    && !args[i + 1].hasPrefix(out.path) {
                    args[i + 1] = out.appendingPathComponent(UUID().uuidString + "-" + URL(fileURLWithPath: args[i + 1]).lastPathComponent).path
                }
                let r = try CLI.run(Array(args), cwd: CLI.repo)
                #expect(r.status == 0, "\(command): `\(part)` failed: \(r.stderr)")
            }
        }
    }
}
