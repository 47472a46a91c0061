import Foundation
import Testing

/// `sweep --shard`, `collect` and `slurm sweep`: shards put back together equal the single-process
/// sweep byte for byte; bad input is one line, exit status 2, nothing written.
@Suite("kvscope sweep --shard, collect, slurm", .serialized)
struct ShardCLITests {
    static let shipped = CLI.repo.appendingPathComponent("Examples/traces/smollm2-pseudoimg2x64-gen16-w24").path
    static let grid = [
        "--policies", "h2o,lookm,streaming", "--budgets", "0.1,0.3", "--metrics", "kept_ratio,attention_recall,output_error",
    ]

    /// A small explore: 2 policies × a 2 × 2 ratio grid.
    static let exploreGrid = [
        "--policies", "h2o,lookm", "--hh-ratio", "0.05,0.2", "--recent-ratio", "0.05,0.1",
        "--metrics", "kept_ratio,attention_recall", "--safe", "attention_recall>=0.9",
    ]

    /// `sweep` with `grid`, or `explore` with `exploreGrid`, and the files each writes that shards must reproduce.
    enum Command: String {
        case sweep, explore
        var args: [String] { [rawValue] + (self == .sweep ? ShardCLITests.grid : ShardCLITests.exploreGrid) }
        var files: [String] { self == .sweep ? ["results.csv", "results.json"] : ["results.csv", "results.json", "safe.csv"] }
    }

    /// The single-process files of `COMMAND TRACE grid -o OUT` by name (run in `OUT`, then moved away
    /// so the sharded run records the same command line), ratio maps included.
    func reference(_ cmd: Command, _ trace: String, out: URL) throws -> [String: Data] {
        let r = try CLI.run([cmd.rawValue, trace] + cmd.args.dropFirst() + ["-o", out.path])
        #expect(r.status == 0, "\(r.stderr)")
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: out.path) where !name.hasPrefix(".") {
            files[name] = try Data(contentsOf: out.appendingPathComponent(name))
        }
        try FileManager.default.removeItem(at: out)
        return files
    }

    func shard(_ cmd: Command, _ trace: String, _ spec: String, out: URL, resume: Bool = false) throws -> CLI.Result {
        try CLI.run([cmd.rawValue, trace] + cmd.args.dropFirst() + ["-o", out.path, "--shard", spec] + (resume ? ["--resume"] : []))
    }

    /// Starts shard `spec`, kills it (SIGKILL) once it has saved a layer, and checks it left no manifest.
    func killMidRun(_ cmd: Command, _ trace: String, _ spec: String, folder: String, out: URL) throws {
        let p = Process()
        p.executableURL = CLI.binary
        p.arguments = [cmd.rawValue, trace] + cmd.args.dropFirst() + ["-o", out.path, "--shard", spec, "--jobs", "1"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let parts = out.appendingPathComponent("shards/\(folder)/.parts")
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, p.isRunning,
            ((try? FileManager.default.contentsOfDirectory(atPath: parts.path)) ?? []).filter({ $0.hasSuffix(".json") }).isEmpty
        {
            // Poll often: on a fast machine the shard's remaining layers take only milliseconds.
            usleep(1_000)
        }
        let killed = p.isRunning
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(killed, "the shard finished before it could be killed")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("shards/\(folder)/shard.json").path))
    }

    func checkShardsReproduce(_ trace: String, _ cmd: Command = .sweep) throws {
        let out = CLI.tempDir().appendingPathComponent(cmd.rawValue)
        let ref = try reference(cmd, trace, out: out)
        // 2/3 is killed after its first layer, then resumed with --resume.
        try killMidRun(cmd, trace, "2/3", folder: "2-of-3", out: out)
        for s in ["1/3", "3/3"] { let r = try shard(cmd, trace, s, out: out); #expect(r.status == 0, "\(r.stderr)") }
        let early = try CLI.run(["collect", out.path])
        #expect(early.status == 2 && early.stderr.contains("2-of-3") && early.stderr.split(separator: "\n").count == 1, "\(early.stderr)")
        for f in cmd.files { #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path)) }
        let again = try shard(cmd, trace, "2/3", out: out)
        #expect(
            again.status == 2 && again.stderr.contains("--resume"), "a shard folder is not overwritten without --resume: \(again.stderr)")
        let resumed = try shard(cmd, trace, "2/3", out: out, resume: true)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        // Shards write only their own folders.
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted() == ["shards"])
        let c = try CLI.run(["collect", out.path])
        #expect(c.status == 0, "\(c.stderr)")
        #expect(try Data(contentsOf: out.appendingPathComponent("results.csv")).count > 1000)
        for f in cmd.files {
            #expect(try Data(contentsOf: out.appendingPathComponent(f)) == ref[f], "collected \(f) differs from the single-process one")
        }
        guard cmd == .explore else { return }
        // explore --resume after collect reuses the shards: no layer recomputed (no OUT/.parts), the
        // same files, and the ratio maps of the single-process explore, byte for byte.
        let before = try Data(contentsOf: out.appendingPathComponent("results.csv"))
        let r = try CLI.run([cmd.rawValue, trace] + cmd.args.dropFirst() + ["-o", out.path, "--resume"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("nothing recomputed"), "\(r.stdout)")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent(".parts").path), "explore --resume recomputed layers")
        #expect(try Data(contentsOf: out.appendingPathComponent("results.csv")) == before)
        let maps = ref.keys.filter { $0.hasPrefix("ratios-") }.sorted()
        #expect(!maps.isEmpty)
        for name in ref.keys.sorted() {
            #expect(try Data(contentsOf: out.appendingPathComponent(name)) == ref[name], "\(name) differs after explore --resume")
        }
        // A different explore over the same shards is refused, not mixed in.
        let other = try CLI.run([cmd.rawValue, trace] + cmd.args.dropFirst() + ["--safe", "kept_ratio<=0.5", "-o", out.path, "--resume"])
        #expect(other.status == 2 && other.stderr.split(separator: "\n").count == 1 && other.stderr.contains("shards"), "\(other.stderr)")
    }

    @Test func shardsOfTheShippedTraceReproduceTheSingleProcessSweep() throws {
        try checkShardsReproduce(Self.shipped)
    }

    @Test func shardsOfASyntheticLlavaTraceReproduceTheSingleProcessSweep() throws {
        let dir = CLI.tempDir().appendingPathComponent("llava")
        let s = try CLI.run([
            "synth", dir.path, "--preset", "llava-1.5", "--layers", "4", "--heads", "4", "--kv-heads", "2", "--head-dim", "32",
            "--grid", "8x8", "--text-len", "120", "--generate", "8",
        ])
        #expect(s.status == 0, "\(s.stderr)")
        try checkShardsReproduce(dir.path)
        try checkShardsReproduce(dir.path, .explore)
    }

    @Test func shardsOfAnExploreOfTheShippedTraceReproduceItsSafeSet() throws {
        try checkShardsReproduce(Self.shipped, .explore)
    }

    @Test(arguments: [
        ("0/3", "--shard 0/3"), ("4/3", "--shard 4/3"), ("a/b", "--shard"), ("3/0", "--shard 3/0"), ("slurm", "--shard slurm"),
    ])
    func badShardIsOneLineAndWritesNothing(spec: String, names: String) throws {
        let out = CLI.tempDir().appendingPathComponent("never")
        // Outside a Slurm job: the array variables are empty.
        let r = try CLI.run(
            ["sweep", Self.shipped, "--policies", "h2o", "-o", out.path, "--shard", spec],
            env: ["SLURM_ARRAY_TASK_ID": "", "SLURM_ARRAY_TASK_COUNT": "", "SLURM_ARRAY_TASK_MIN": ""])
        #expect(r.status == 2)
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains(names), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    @Test func slurmShardTakesTheArrayTask() throws {
        let out = CLI.tempDir().appendingPathComponent("s")
        // An array 1-3, task 2: shard 2 of 3.
        let r = try CLI.run(
            [
                "sweep", Self.shipped, "--policies", "streaming", "--budgets", "0.2", "--metrics", "kept_ratio", "-o", out.path, "--shard",
                "slurm",
            ],
            env: ["SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("shards").path) == ["2-of-3"])
        // slurm/N: task K alone (resubmitted with --array=K, so the count is 1) is still shard K+1 of N.
        let k = try CLI.run(
            [
                "sweep", Self.shipped, "--policies", "streaming", "--budgets", "0.2", "--metrics", "kept_ratio", "-o", out.path, "--shard",
                "slurm/3",
            ],
            env: ["SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "1", "SLURM_ARRAY_TASK_MIN": "0"])
        #expect(k.status == 0, "\(k.stderr)")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("shards").path).sorted() == ["1-of-3", "2-of-3"])
    }

    @Test func collectRefusesForeignAndMissingShards() throws {
        let small = ["--budgets", "0.2", "--metrics", "kept_ratio"]
        func run(_ out: URL, _ policies: String, _ spec: String) throws {
            let r = try CLI.run(["sweep", Self.shipped, "--policies", policies] + small + ["-o", out.path, "--shard", spec])
            #expect(r.status == 0, "\(r.stderr)")
        }
        func refused(_ out: URL, naming folder: String) throws {
            let c = try CLI.run(["collect", out.path])
            #expect(c.status == 2 && c.stderr.split(separator: "\n").count == 1 && c.stderr.contains(folder), "\(c.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("results.csv").path))
            #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("results.json").path))
        }
        // A shard of another command.
        let foreign = CLI.tempDir()
        try run(foreign, "h2o", "1/2")
        try run(foreign, "streaming", "2/2")
        try refused(foreign, naming: "shards/2-of-2")
        // A missing shard, named.
        let missing = CLI.tempDir()
        try run(missing, "h2o", "1/2")
        try refused(missing, naming: "shards/2-of-2")
        // Shards of different split counts.
        let counts = CLI.tempDir()
        try run(counts, "h2o", "1/2")
        try run(counts, "h2o", "1/3")
        try refused(counts, naming: "shards/1-of-3")
        // No shards at all.
        try refused(CLI.tempDir().appendingPathComponent("nothing"), naming: "nothing")
    }

    @Test func slurmSweepWritesAnArrayAndACollectJob() throws {
        let out = CLI.tempDir().appendingPathComponent("study")
        let r = try CLI.run([
            "slurm", "sweep", Self.shipped, "--policies", "h2o,lookm", "-o", out.path, "--tasks", "3",
            "--partition", "cpu", "--time", "00:30:00", "--cpus-per-task", "2", "--mem", "4G",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let array = try String(contentsOf: out.appendingPathComponent("slurm/sweep-array.sh"), encoding: .utf8)
        let collect = try String(contentsOf: out.appendingPathComponent("slurm/collect.sh"), encoding: .utf8)
        for line in [
            "#SBATCH --array=0-2", "#SBATCH --partition=cpu", "#SBATCH --time=00:30:00", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=4G",
        ] {
            #expect(array.contains(line), "missing \(line)")
        }
        #expect(array.contains(" sweep \(Self.shipped) --policies h2o,lookm -o \(out.path) --jobs 2 --shard slurm/3 --resume"), "\(array)")
        #expect(!array.contains("--tasks") && !array.contains("--submit"))
        #expect(collect.contains(" collect \(out.path)") && collect.contains("#SBATCH --partition=cpu"))
        #expect(r.stdout.contains("--dependency=afterok:"))
        // Bad Slurm options: one line naming the flag, nothing written.
        let bad = CLI.tempDir().appendingPathComponent("bad")
        for args in [
            ["--tasks", "0"], ["--tasks", "2", "--time", "1;rm"], ["--tasks", "2", "--time", "1h"], ["--tasks", "2", "--time", "1:2:3:4"],
            ["--tasks", "2", "--mem", "4GB"], ["--tasks", "2", "--mem", ""], ["--tasks", "2", "--partition", "a/b"],
            ["--tasks", "2", "--partition", "cpu,"], ["--tasks", "2", "--shard", "1/2"],
        ] {
            let b = try CLI.run(["slurm", "sweep", Self.shipped, "--policies", "h2o", "-o", bad.path] + args)
            #expect(b.status == 2 && b.stderr.split(separator: "\n").count == 1, "\(args): \(b.stderr)")
            #expect(b.stderr.contains(args[args.count - 2]), "\(args): \(b.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: bad.path))
    }

    /// Every time and memory form sbatch takes is written into the script as given.
    @Test(arguments: [
        ("--time", "30"), ("--time", "30:00"), ("--time", "2-12"), ("--time", "2-12:00"), ("--time", "2-12:00:00"), ("--time", "infinite"),
        ("--mem", "0"), ("--mem", "4096"), ("--mem", "500M"), ("--partition", "cpu,gpu"),
    ])
    func slurmTakesEverySbatchForm(flag: String, value: String) throws {
        let out = CLI.tempDir().appendingPathComponent("forms")
        let r = try CLI.run(["slurm", "sweep", Self.shipped, "--policies", "h2o", "-o", out.path, "--tasks", "2", flag, value])
        #expect(r.status == 0, "\(r.stderr)")
        let array = try String(contentsOf: out.appendingPathComponent("slurm/sweep-array.sh"), encoding: .utf8)
        #expect(array.contains("#SBATCH \(flag)=\(value)\n"), "\(array)")
    }

    /// `slurm explore`: the array script, run as Slurm runs each task (bash with the array
    /// variables), then the collect script, gives the single-process explore's files byte for byte
    /// (the collect job also draws the ratio maps, recomputing nothing).
    @Test func slurmExploreScriptsReproduceTheSingleProcessExplore() throws {
        let out = CLI.tempDir().appendingPathComponent("explore")
        let ref = try reference(.explore, Self.shipped, out: out)
        let r = try CLI.run(["slurm", "explore", Self.shipped] + Command.explore.args.dropFirst() + ["-o", out.path, "--tasks", "3"])
        #expect(r.status == 0, "\(r.stderr)")
        let array = out.appendingPathComponent("slurm/explore-array.sh"), collect = out.appendingPathComponent("slurm/collect.sh")
        let text = try String(contentsOf: array, encoding: .utf8)
        #expect(
            text.contains("#SBATCH --array=0-2") && text.contains(" explore \(Self.shipped) ") && text.contains("--shard slurm/3 --resume"),
            "\(text)")
        let bash = URL(fileURLWithPath: "/bin/bash")
        for k in 0 ..< 3 {
            let t = try CLI.run(
                [array.path], env: ["SLURM_ARRAY_TASK_ID": String(k), "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0"],
                executable: bash)
            #expect(t.status == 0, "task \(k): \(t.stderr)")
        }
        let c = try CLI.run([collect.path], executable: bash)
        #expect(c.status == 0, "\(c.stderr)")
        #expect(c.stdout.contains("nothing recomputed"), "\(c.stdout)")
        #expect(ref.keys.contains { $0.hasPrefix("ratios-") })
        for name in ref.keys.sorted() {
            #expect(try Data(contentsOf: out.appendingPathComponent(name)) == ref[name], "\(name) differs from the single-process explore")
        }
    }
}
