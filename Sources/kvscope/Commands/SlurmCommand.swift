import ArgumentParser
import Foundation
import KVSimulator

/// `kvscope slurm sweep|explore …`: a Slurm job-array script for a sharded sweep or explore and a
/// collect job after it.
struct SlurmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slurm",
        abstract: "Write (and with --submit, submit) a Slurm job array that runs a sweep or explore in shards, and a collect job after it.",
        subcommands: [SlurmSweepCommand.self, SlurmExploreCommand.self]
    )
}

/// The Slurm options of `kvscope slurm sweep`.
struct SlurmOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Array tasks: the sweep is split into n shards, one per task.", valueName: "n"))
    var tasks: Int
    @Option(help: ArgumentHelp("Slurm partition, or a comma-separated list (sbatch --partition).", valueName: "name"))
    var partition: SlurmPartition?
    @Option(
        help: ArgumentHelp(
            "Time limit of each task (sbatch --time): minutes, [d-]hh:mm[:ss], e.g. 01:00:00 or 2-00:00:00.", valueName: "time"))
    var time: SlurmTime?
    @Option(help: ArgumentHelp("CPUs of each task (sbatch --cpus-per-task); the sweep's --jobs defaults to it.", valueName: "n"))
    var cpusPerTask: Int?
    @Option(
        help: ArgumentHelp("Memory of each task (sbatch --mem): an integer with an optional K, M, G or T unit, e.g. 4G.", valueName: "size")
    )
    var mem: SlurmMemory?
    @Flag(help: "Submit the array and the collect job with sbatch and print their job ids.")
    var submit = false

    /// The flags above, as they may appear on the command line (`--tasks 4` or `--tasks=4`).
    static let valued = ["--tasks", "--partition", "--time", "--cpus-per-task", "--mem"]
    static let flags = ["--submit"]

    func validate() throws {
        guard tasks >= 1 && tasks <= ShardSpec.maxCount else { throw ValidationError("--tasks must be in 1…\(ShardSpec.maxCount)") }
        if let c = cpusPerTask, c < 1 || c > 256 { throw ValidationError("--cpus-per-task must be in 1…256") }
    }

    /// `argv` without these options: the arguments of the command the tasks run.
    static func strip(_ argv: [String]) -> [String] {
        var out: [String] = []
        var skip = false
        for a in argv {
            if skip { skip = false; continue }
            if valued.contains(a) { skip = true; continue }
            if flags.contains(a) || valued.contains(where: { a.hasPrefix($0 + "=") }) { continue }
            out.append(a)
        }
        return out
    }
}

// The typed values of the Slurm flags, written into the `#SBATCH` lines as given. Each is checked
// when the flag is parsed (so nothing reaches the script that sbatch or the shell would misread);
// a bad one is ArgumentParser's one line naming the flag (`The value '1h' is invalid for
// '--time <time>'`), exit status 2.

/// `--partition`: one partition name or a comma-separated list of them (letters, digits, `-_.`).
struct SlurmPartition: ExpressibleByArgument, CustomStringConvertible {
    var description: String
    init?(argument: String) {
        let names = argument.split(separator: ",", omittingEmptySubsequences: false)
        guard names.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) } })
        else { return nil }
        description = argument
    }
}

/// `--time`: a time limit in one of sbatch's forms, `m`, `m:s`, `h:m:s`, `d-h`, `d-h:m`, `d-h:m:s`
/// (each field digits), or `infinite`/`unlimited`.
struct SlurmTime: ExpressibleByArgument, CustomStringConvertible {
    var description: String
    init?(argument: String) {
        if ["infinite", "unlimited"].contains(argument.lowercased()) {
            description = argument
            return
        }
        let dayClock = argument.split(separator: "-", omittingEmptySubsequences: false)
        guard dayClock.count <= 2, let clock = dayClock.last?.split(separator: ":", omittingEmptySubsequences: false) else { return nil }
        let fields = dayClock.dropLast() + clock
        guard clock.count <= 3, fields.allSatisfy({ (1 ... 6).contains($0.count) && $0.allSatisfy { $0.isASCII && $0.isNumber } })
        else { return nil }
        description = argument
    }
}

/// `--mem`: an integer with an optional unit K, M, G or T (megabytes without one; `0` asks sbatch
/// for all of a node's memory).
struct SlurmMemory: ExpressibleByArgument, CustomStringConvertible {
    var description: String
    init?(argument: String) {
        let digits = "KMGTkmgt".contains(argument.last ?? " ") ? argument.dropLast() : Substring(argument)
        guard (1 ... 12).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        description = argument
    }
}

/// `kvscope slurm sweep TRACE… [sweep options] -o OUT --tasks N […]`.
struct SlurmSweepCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample("slurm sweep Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policies h2o,lookm -o Output/slurm-sweep --tasks 4"),
        HelpExample(
            "slurm sweep Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policies h2o,lookm -o Output/slurm-sweep --tasks 4 --partition cpu --time 00:30:00 --cpus-per-task 2 --mem 4G",
            note: "with resources; add --submit to hand both scripts to sbatch"),
    ]

    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Write OUT/slurm/sweep-array.sh (one shard per array task) and OUT/slurm/collect.sh (after the array).",
        discussion: """
            Takes every option of `kvscope sweep` (checked here, before anything is written) plus the Slurm \
            options. Writes OUT/slurm/sweep-array.sh, a job array of --tasks N tasks (indices 0…N−1), task K \
            running `kvscope sweep … --shard slurm/N --resume` (shard K+1 of N); and OUT/slurm/collect.sh, \
            running `kvscope collect OUT`. Logs go to OUT/slurm/logs/. With --submit both are submitted, the \
            collect job with --dependency=afterok on the array, and the two job ids printed; without it, the \
            two sbatch commands to run are printed. A task that failed or was cancelled is rerun alone with \
            `sbatch --array=K OUT/slurm/sweep-array.sh` (it resumes its finished layers), then \
            `sbatch --dependency=afterok:JOB OUT/slurm/collect.sh`.
            """ + "\n\n" + HelpExample.section(examples)
    )

    @OptionGroup var sweep: SweepCommand
    @OptionGroup var slurm: SlurmOptions

    func validate() throws {
        guard sweep.out != nil else {
            throw ValidationError("--output DIR is required: the folder the array tasks and the collect job share")
        }
        guard sweep.sharding.shard == nil else { throw ValidationError("--shard: set by the array script; give --tasks N instead") }
        guard !sweep.resume else { throw ValidationError("--resume: the array tasks always resume; leave it out") }
    }

    func run() throws {
        try SlurmJobs(command: "sweep", out: sweep.out!, slurm: slurm).write()
    }
}

/// `kvscope slurm explore TRACE… [explore options] -o OUT --tasks N […]`.
struct SlurmExploreCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample(
            "slurm explore Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policies lookm,h2o --hh-ratio 0.05,0.1,0.2 --recent-ratio 0.05,0.1 --safe 'attention_recall>=0.95' -o Output/slurm-explore --tasks 4"
        )
    ]

    static let configuration = CommandConfiguration(
        commandName: "explore",
        abstract: "Write OUT/slurm/explore-array.sh (one shard per array task) and OUT/slurm/collect.sh (after the array).",
        discussion: """
            Takes every option of `kvscope explore` plus the Slurm options, as `kvscope slurm sweep` does. \
            Task K runs `kvscope explore … --shard slurm/N --resume`; the collect job runs `kvscope collect OUT` \
            (results.csv, results.json and safe.csv, byte-identical to a single-process explore) and then the \
            same explore with --resume, which recomputes nothing and draws the ratio maps and the table.
            """ + "\n\n" + HelpExample.section(examples)
    )

    @OptionGroup var explore: ExploreCommand
    @OptionGroup var slurm: SlurmOptions

    func validate() throws {
        guard explore.sweep.out != nil else {
            throw ValidationError("--output DIR is required: the folder the array tasks and the collect job share")
        }
        guard explore.sweep.sharding.shard == nil else { throw ValidationError("--shard: set by the array script; give --tasks N instead") }
        guard !explore.sweep.resume else { throw ValidationError("--resume: the array tasks always resume; leave it out") }
    }

    func run() throws {
        try SlurmJobs(command: "explore", out: explore.sweep.out!, slurm: slurm).write()
    }
}

/// The two job scripts of `kvscope slurm sweep|explore`: the array (task K runs shard K+1 of N of
/// `kvscope COMMAND …`, resuming) and the collect job after it; with `--submit`, both submitted.
struct SlurmJobs {
    /// `sweep` or `explore`: the subcommand the array tasks run.
    var command: String
    /// The `--output` folder shared by the tasks and the collect job.
    var out: String
    var slurm: SlurmOptions

    func write() throws {
        let argv = CommandLine.arguments
        guard let at = argv.firstIndex(of: command) else { throw CLIError("slurm \(command): cannot find the \(command) arguments") }
        var args = SlurmOptions.strip(Array(argv[(at + 1)...]))
        if let c = slurm.cpusPerTask, !args.contains(where: { $0 == "--jobs" || $0.hasPrefix("--jobs=") }) {
            args += ["--jobs", String(c)]
        }
        let fm = FileManager.default
        let cwd = fm.currentDirectoryPath
        let out = URL(fileURLWithPath: self.out, relativeTo: URL(fileURLWithPath: cwd, isDirectory: true)).standardizedFileURL
        let dir = out.appendingPathComponent("slurm")
        let logs = dir.appendingPathComponent("logs")
        let binary = Bundle.main.executableURL?.resolvingSymlinksInPath().path ?? argv[0]
        let n = slurm.tasks
        var head = [
            "#!/bin/bash", "#SBATCH --job-name=kvscope-\(command)", "#SBATCH --array=0-\(n - 1)",
            "#SBATCH --output=\(logs.path)/\(command)-%A_%a.out",
        ]
        var common: [String] = []
        if let p = slurm.partition { common.append("#SBATCH --partition=\(p)") }
        if let t = slurm.time { common.append("#SBATCH --time=\(t)") }
        if let m = slurm.mem { common.append("#SBATCH --mem=\(m)") }
        head += common
        if let c = slurm.cpusPerTask { head.append("#SBATCH --cpus-per-task=\(c)") }
        let array =
            (head + [
                "# Written by kvscope slurm \(command): task K of the array runs shard K+1 of \(n).",
                "# Rerun one failed or cancelled task alone with: sbatch --array=K \(dir.path)/\(command)-array.sh",
                "set -euo pipefail",
                "cd \(shellQuote(cwd))",
                "exec " + ([binary, command] + args + ["--shard", "slurm/\(n)", "--resume"]).map(shellQuote).joined(separator: " "),
            ]).joined(separator: "\n") + "\n"
        let collect =
            (["#!/bin/bash", "#SBATCH --job-name=kvscope-collect", "#SBATCH --output=\(logs.path)/collect-%j.out"] + common + [
                "# Written by kvscope slurm \(command): merges the shards once every array task has succeeded.",
                "set -euo pipefail",
                "cd \(shellQuote(cwd))",
            ]
            + (command == "explore"
                ? [
                    [binary, "collect", out.path].map(shellQuote).joined(separator: " "),
                    "# the ratio maps and the table, from the collected rows (nothing is recomputed)",
                    "exec " + ([binary, command] + args + ["--resume"]).map(shellQuote).joined(separator: " "),
                ]
                : [
                    "exec " + [binary, "collect", out.path].map(shellQuote).joined(separator: " ")
                ]))
            .joined(separator: "\n") + "\n"
        do { try fm.createDirectory(at: logs, withIntermediateDirectories: true) } catch {
            throw CLIError("--output \(out.path): cannot create \(logs.path) (\((error as NSError).localizedDescription))")
        }
        let arrayURL = dir.appendingPathComponent("\(command)-array.sh"), collectURL = dir.appendingPathComponent("collect.sh")
        try writeOutput(Data(array.utf8), to: arrayURL.path, flag: "--output")
        try writeOutput(Data(collect.utf8), to: collectURL.path, flag: "--output")
        for u in [arrayURL, collectURL] { try? fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: u.path) }
        guard slurm.submit else {
            print("wrote \(arrayURL.path) (\(n) tasks) and \(collectURL.path); submit them with:")
            print("  JOB=$(sbatch --parsable \(shellQuote(arrayURL.path)))")
            print("  sbatch --dependency=afterok:$JOB \(shellQuote(collectURL.path))")
            return
        }
        let job = try sbatch(["--parsable", arrayURL.path])
        let after = try sbatch(["--parsable", "--dependency=afterok:\(job)", collectURL.path])
        print("array job \(job) (\(n) tasks): \(arrayURL.path)")
        print("collect job \(after) (after ok \(job)): \(collectURL.path)")
    }

    /// Runs `sbatch ARGS` and returns the job id it prints (`--parsable`: `id` or `id;cluster`).
    func sbatch(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sbatch"] + args
        let o = Pipe(), e = Pipe()
        p.standardOutput = o
        p.standardError = e
        do { try p.run() } catch { throw CLIError("--submit: cannot run sbatch (\((error as NSError).localizedDescription))") }
        let out = o.fileHandleForReading.readDataToEndOfFile(), err = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard p.terminationStatus == 0, let id = text.split(separator: ";").first.map(String.init), !id.isEmpty, id.allSatisfy(\.isNumber)
        else {
            let why =
                String(decoding: err, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "exit status \(p.terminationStatus)"
            throw CLIError("--submit: sbatch \(args.last ?? "") failed: \(why)")
        }
        return id
    }
}

/// `s` quoted for bash (single quotes unless it is plain).
func shellQuote(_ s: String) -> String {
    if !s.isEmpty, s.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }), s.allSatisfy(\.isASCII) { return s }
    return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
