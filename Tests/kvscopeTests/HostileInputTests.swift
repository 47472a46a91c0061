import Foundation
import KVTrace
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Runs `kvscope` with `posix_spawn` and `wait4`, so each run's own peak RSS is known, with a
/// deadline (a hang is killed and reported). `shell` runs the command line through `/bin/sh -c`
/// (for `ulimit`).
struct MeasuredRun {
    var status: Int32
    var signalled: Bool
    var timedOut: Bool
    var stderr: String
    var stdout: String
    var maxRSSBytes: Int
    var seconds: Double

    var errorLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty } }

    static func kvscope(_ args: [String], shellPrefix: String? = nil, timeout: Double = 60) throws -> MeasuredRun {
        let dir = CLI.tempDir()
        let out = dir.appendingPathComponent("stdout").path, err = dir.appendingPathComponent("stderr").path
        var argv: [String]
        if let shellPrefix {
            let quoted = ([CLI.binary.path] + args).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(
                separator: " ")
            argv = ["/bin/sh", "-c", "\(shellPrefix); exec \(quoted)"]
        } else {
            argv = [CLI.binary.path] + args
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var pid: pid_t = 0
        let cargs = argv.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        let started = Date()
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cargs, environ)
        guard rc == 0 else { throw CLIError("posix_spawn failed: \(rc)") }
        var status: Int32 = 0
        var usage = rusage()
        var timedOut = false
        while true {
            let r = wait4(pid, &status, WNOHANG, &usage)
            if r == pid { break }
            if Date().timeIntervalSince(started) > timeout {
                kill(pid, SIGKILL)
                timedOut = true
                _ = wait4(pid, &status, 0, &usage)
                break
            }
            usleep(5_000)
        }
        let seconds = Date().timeIntervalSince(started)
        let signalled = (status & 0x7f) != 0
        let exit = signalled ? -1 : (status >> 8) & 0xff
        return MeasuredRun(
            status: exit, signalled: signalled, timedOut: timedOut,
            stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "",
            stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            maxRSSBytes: Int(usage.ru_maxrss) * 1024, seconds: seconds)
    }
}

struct CLIError: Error { var m: String; init(_ m: String) { self.m = m } }

/// Every reproducer of the hostile-input issue, through the binary: exit status 2 with exactly one
/// line on stderr that names the file or flag (0 for the valid trace), no trap, no hang, and under
/// 500 MB peak RSS.
@Suite("hostile input, full disks and kills")
struct HostileInputTests {
    static let regressions = CLI.repo.appendingPathComponent("Tests/KVTraceTests/Fixtures/fuzz-regressions")
    static let example = CLI.repo.appendingPathComponent("Examples/traces/smollm2-pseudoimg2x64-gen16-w24").path

    /// One line, naming `names` (a path or flag), exit 2, no trap, < 500 MB, no NSError or ExitCode text.
    func expectRefused(_ r: MeasuredRun, naming names: String, _ context: String) {
        #expect(!r.timedOut, "\(context): hang")
        #expect(!r.signalled, "\(context): killed by a signal (trap)")
        #expect(r.status == 2, "\(context): exit \(r.status), stderr \(r.stderr)")
        #expect(r.errorLines.count == 1, "\(context): \(r.errorLines.count) lines: \(r.stderr)")
        #expect(r.stderr.hasPrefix("kvscope: error: "), "\(context): \(r.stderr)")
        #expect(r.stderr.contains(names), "\(context): does not name \(names): \(r.stderr)")
        #expect(!r.stderr.contains("ExitCode") && !r.stderr.contains("Error Domain"), "\(context): \(r.stderr)")
        #expect(r.maxRSSBytes < 500_000_000, "\(context): peak RSS \(r.maxRSSBytes)")
    }

    /// A small valid bare `.npy` attention [2, 4, 4] and a `.npz` with float kind arrays holding NaN / 1e30.
    static func bareFiles() throws -> URL {
        let dir = CLI.tempDir()
        let a = [Float](repeating: 0.25, count: 32)
        try SafeTensorsWriter.write(
            [TensorData(name: "attn", floats: a, shape: [2, 4, 4], as: .f32)], metadata: [:],
            to: dir.appendingPathComponent("ok.safetensors"))
        return dir
    }

    static let fileCases: [(String, [String], String)] = [
        ("npy/valid-issue10-zero-elements-huge-dim.npy", ["info"], "has no elements"),
        ("npy/valid-issue10-zero-elements-huge-lead.npy", ["info"], "has no elements"),
        ("npy/valid-issue10-zero-elements-huge-dim.npy", ["simulate", "--policy", "lookm", "--budget", "0.5"], "has no elements"),
        ("npz/issue10-bomb.npz", ["info", "--attn", "attn"], "npy header declares"),
        ("npz/issue10-nofinal.npz", ["info", "--attn", "attn"], "final block"),
        ("npz/issue10-past.npz", ["info", "--attn", "attn"], "inflates past"),
        ("npz/issue10-crc.npz", ["info", "--attn", "attn"], "CRC-32 mismatch"),
        ("npz/issue10-zip64.npz", ["info", "--attn", "attn"], "out of range"),
        ("npz/issue10-zip64b.npz", ["info", "--attn", "attn"], "out of range"),
        ("safetensors/issue10-newline-in-name.safetensors", ["info", "--attn", "a\nb"], "'a\\nb'"),
    ]

    @Test("bad files", arguments: fileCases.indices)
    func badFile(_ i: Int) throws {
        let (rel, cmd, expected) = Self.fileCases[i]
        let path = Self.regressions.appendingPathComponent(rel).path
        let args = [cmd[0], path] + cmd.dropFirst()
        let r = try MeasuredRun.kvscope(args)
        expectRefused(r, naming: path, rel)
        #expect(r.stderr.contains(expected), "\(rel): \(r.stderr)")
        if rel.contains("bomb") { #expect(r.seconds < 1, "zip bomb took \(r.seconds) s") }
    }

    /// trace.json reproducers, each in a folder with one valid layer file.
    static func traceFolder(_ json: String) throws -> URL {
        let dir = CLI.tempDir().appendingPathComponent("t")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: regressions.appendingPathComponent("tracejson/\(json)"), to: dir.appendingPathComponent("trace.json"))
        try SafeTensorsWriter.write(
            [TensorData(name: "attn", floats: [Float](repeating: 0.25, count: 32), shape: [2, 4, 4], as: .f32)],
            metadata: ["layer": "0"], to: dir.appendingPathComponent("layer_000.safetensors"))
        return dir
    }

    static let jsonCases: [(String, String)] = [
        ("issue10-image-grid-overflow.json", "images[0].grid: 3037000500 × 3037000500 overflows"),
        ("issue10-tile-grid-overflow.json", "images[0].tiles[0].grid: 3037000500 × 3037000500 overflows"),
        ("issue10-query-start-max.json", "query_rows"),
        ("issue10-kv-heads-max.json", "num_kv_heads"),
        ("issue10-modality-1e30.json", "token_modality[1]: expected an integer"),
    ]

    @Test("bad trace.json", arguments: jsonCases.indices)
    func badTraceJSON(_ i: Int) throws {
        let (json, expected) = Self.jsonCases[i]
        let dir = try Self.traceFolder(json)
        for cmd in [["info"], ["simulate", "--policy", "lookm", "--budget", "0.5"]] {
            let r = try MeasuredRun.kvscope([cmd[0], dir.path] + cmd.dropFirst())
            expectRefused(r, naming: dir.appendingPathComponent("trace.json").path, json)
            #expect(r.stderr.contains(expected), "\(json): \(r.stderr)")
        }
    }

    @Test func recorderStringIsAValidTrace() throws {
        let dir = try Self.traceFolder("valid-issue10-recorder-string.json")
        let r = try MeasuredRun.kvscope(["info", dir.path])
        #expect(r.status == 0 && !r.signalled, "\(r.stderr)")
        #expect(r.stderr.isEmpty, "\(r.stderr)")
    }

    static let flagCases: [([String], String)] = [
        (["--query-start", "9223372036854775807"], "--query-start"),
        (["--kv-map", "9223372036854775807,0"], "--kv-map"),
        (["--placeholders", "1,9223372036854775807", "--tokens-per-image", "2"], "--placeholders"),
        (["--placeholders", "1,2", "--tokens-per-image", "9223372036854775807"], "--tokens-per-image"),
        (["--layer", "9223372036854775807"], "--layer"),
        (["--grid", "3037000500x3037000500", "--image-spans", "1:3"], "--grid"),
        (["--tril"], "--tril"),
    ]

    @Test("bad mapping flags", arguments: flagCases.indices)
    func badFlag(_ i: Int) throws {
        let (flags, name) = Self.flagCases[i]
        let file = try Self.bareFiles().appendingPathComponent("ok.safetensors").path
        let r = try MeasuredRun.kvscope(["info", file, "--attn", "attn"] + flags)
        expectRefused(r, naming: name, flags.joined(separator: " "))
    }

    /// A bare `.npy` from a regression input of the `barearrays` reader: flag byte, npy image, NUL, sidecar.
    @Test(
        "sidecar and packed-triangle reproducers",
        arguments: [
            "issue10-sidecar-query-start-max.bin", "issue10-sidecar-kv-map-max.bin",
            "issue10-sidecar-grid-overflow.bin", "issue10-tril-zero-elements.bin",
        ])
    func bareArrayReproducer(_ name: String) throws {
        let bytes = [UInt8](try Data(contentsOf: Self.regressions.appendingPathComponent("barearrays/\(name)")))
        let body = Array(bytes.dropFirst())
        let split = (0 ..< body.count - 1).last { body[$0] == 0 && body[$0 + 1] == UInt8(ascii: "{") } ?? body.count
        let dir = CLI.tempDir()
        let npy = dir.appendingPathComponent("a.npy")
        try Data(body[..<split]).write(to: npy)
        if split < body.count { try Data(body[(split + 1)...]).write(to: dir.appendingPathComponent("a.trace.json")) }
        let tril = bytes[0] & 1 != 0
        let r = try MeasuredRun.kvscope(["info", npy.path] + (tril ? ["--tril"] : []))
        expectRefused(r, naming: split < body.count ? dir.appendingPathComponent("a").path : npy.path, name)
    }

    @Test func floatKindArraysWithNaNOrHugeValues() throws {
        let dir = try Self.bareFiles()
        let st = dir.appendingPathComponent("kinds.safetensors")
        try SafeTensorsWriter.write(
            [
                TensorData(name: "attn", floats: [Float](repeating: 0.25, count: 32), shape: [2, 4, 4], as: .f32),
                TensorData(name: "nan", floats: [0, .nan, 1, 1], shape: [4], as: .f32),
                TensorData(name: "huge", floats: [0, 1e30, 1, 1], shape: [4], as: .f32),
            ], metadata: [:], to: st)
        for (flag, array) in [("--token-kind", "nan"), ("--token-kind", "huge"), ("--modality", "nan"), ("--modality", "huge")] {
            let r = try MeasuredRun.kvscope(["info", st.path, "--attn", "attn", flag, array])
            expectRefused(r, naming: flag, "\(flag) \(array)")
            #expect(r.stderr.contains("is not an integer"), "\(r.stderr)")
        }
    }

    @Test func policyWindowsOutOfRange() throws {
        for policy in ["pyramidkv", "adakv"] {
            for w in ["-1", "9223372036854775807"] {
                let r = try MeasuredRun.kvscope(["simulate", Self.example, "--policy", policy, "--param", "window=\(w)", "--budget", "0.2"])
                expectRefused(r, naming: "parameter window", "\(policy) window=\(w)")
                #expect(r.stderr.contains(policy), "\(r.stderr)")
            }
        }
    }

    /// A 90-byte safetensors whose zero-element tensor names a dimension of 2⁴⁰: refused, never allocated.
    @Test func zeroElementSafetensorsHaveNoSayOverOtherDimensions() throws {
        let dir = CLI.tempDir()
        for (name, shape) in [("lead", "[0,1099511627776,4]"), ("tail", "[2,1099511627776,0]")] {
            let header = Data(#"{"attn":{"dtype":"F32","shape":\#(shape),"data_offsets":[0,0]}}"#.utf8)
            var bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Data($0) }
            bytes.append(header)
            let f = dir.appendingPathComponent("\(name).safetensors")
            try bytes.write(to: f)
            for cmd in [["info"], ["simulate", "--policy", "lookm", "--budget", "0.5"]] {
                let r = try MeasuredRun.kvscope([cmd[0], f.path, "--attn", "attn"] + cmd.dropFirst())
                expectRefused(r, naming: f.path, "\(name) \(cmd[0])")
                #expect(r.stderr.contains("has no elements"), "\(r.stderr)")
            }
        }
    }

    /// Folders nobody may write, root included (`/proc`): one line naming the path the user gave.
    @Test func unwritableOutputFolders() throws {
        let target = "/proc/kvscope-hostile-\(getpid())"
        let runs: [([String], String)] = [
            (["sweep", Self.example, "--policies", "h2o", "--budgets", "0.2", "--metrics", "kept_ratio", "--out", target], target),
            (["render", "modality", Self.example, "--out", target + ".png"], target + ".png"),
            (["simulate", Self.example, "--policy", "h2o", "--budget", "0.5", "--save-cache", target], target),
            (["synth", target, "--layers", "1"], target),
        ]
        for (args, path) in runs {
            let r = try MeasuredRun.kvscope(args)
            expectRefused(r, naming: path, args[0])
            #expect(!r.stderr.contains(".tmp-"), "\(args[0]) names a temporary file: \(r.stderr)")
        }
    }

    @Test func hugeLayerRanges() throws {
        for range in ["0-9223372036854775807", "0-100000000"] {
            let r = try MeasuredRun.kvscope(
                ["simulate", Self.example, "--policy", "lookm", "--budget", "0.2", "--layers", range], timeout: 30)
            expectRefused(r, naming: "--layers", range)
        }
    }

    @Test func hugeSynthSettings() throws {
        let out = CLI.tempDir().appendingPathComponent("s").path
        for flags in [
            ["--grid", "3037000500x3037000500"], ["--text-len", "9223372036854775807"], ["--images", "9223372036854775807"],
            ["--heads", "4611686018427387904", "--kv-heads", "1"], ["--heads", "65536", "--kv-heads", "65536", "--text-len", "100000"],
        ] {
            let r = try MeasuredRun.kvscope(["synth", out] + flags)
            expectRefused(r, naming: flags[0], flags.joined(separator: " "))
            #expect(!FileManager.default.fileExists(atPath: out))
        }
    }

    @Test func flagValuesThatLookLikeOptions() throws {
        let r = try MeasuredRun.kvscope(["simulate", Self.example, "--policy", "lookm", "--budget", "-1"])
        expectRefused(r, naming: "--budget", "--budget -1")
        #expect(!r.stderr.contains("Missing value"), "\(r.stderr)")
        let s = try MeasuredRun.kvscope([
            "sweep", Self.example, "--policies", "lookm", "--budgets", "", "--out", CLI.tempDir().appendingPathComponent("sw").path,
        ])
        expectRefused(s, naming: "--budgets", "--budgets ''")
    }

    @Test func nanDataInInfoNamesTheFile() throws {
        let dir = try Self.bareFiles()
        let f = dir.appendingPathComponent("nan.safetensors")
        var a = [Float](repeating: 0.25, count: 32)
        a[0] = .nan
        try SafeTensorsWriter.write([TensorData(name: "attn", floats: a, shape: [2, 4, 4], as: .f32)], metadata: [:], to: f)
        for json in [false, true] {
            let r = try MeasuredRun.kvscope(["info", f.path, "--attn", "attn"] + (json ? ["--json"] : []))
            expectRefused(r, naming: f.path, "info NaN json=\(json)")
            #expect(r.stderr.contains("NaN"), "\(r.stderr)")
        }
    }

    // MARK: outputs

    @Test func saveCacheNeverWritesIntoTheInput() throws {
        let trace = try TestTrace.small().writeTemporaryFolder(roles: ["attn", "k"])
        let before = try Data(contentsOf: trace.appendingPathComponent("layer_000.safetensors"))
        for target in [trace.path, trace.appendingPathComponent("sub").path] {
            let r = try MeasuredRun.kvscope(["simulate", trace.path, "--policy", "h2o", "--budget", "0.5", "--save-cache", target])
            expectRefused(r, naming: "--save-cache", target)
        }
        #expect(try Data(contentsOf: trace.appendingPathComponent("layer_000.safetensors")) == before)
        let file = CLI.tempDir().appendingPathComponent("f")
        try Data("x".utf8).write(to: file)
        let r = try MeasuredRun.kvscope(["simulate", trace.path, "--policy", "h2o", "--budget", "0.5", "--save-cache", file.path])
        expectRefused(r, naming: file.path, "--save-cache at a file")
    }

    @Test func aFolderWhereTheFigureGoesIsRefusedNotDeleted() throws {
        let dir = CLI.tempDir()
        let folder = dir.appendingPathComponent("fig.pdf")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("keep"), withIntermediateDirectories: true)
        let r = try MeasuredRun.kvscope(["render", "modality", Self.example, "--out", folder.path])
        expectRefused(r, naming: folder.path, "folder at --out")
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("keep").path))
    }

    @Test func outputFoldersThatAreFilesOrDevices() throws {
        let file = CLI.tempDir().appendingPathComponent("f")
        try Data("x".utf8).write(to: file)
        for out in [file.path, "/dev/full"] {
            let r = try MeasuredRun.kvscope(["sweep", Self.example, "--policies", "h2o", "--budgets", "0.2", "--out", out])
            expectRefused(r, naming: out, "sweep --out \(out)")
            #expect(r.stderr.contains("is a file, expected a folder"), "\(r.stderr)")
        }
        let r = try MeasuredRun.kvscope(["render", "modality", Self.example, "--out", file.path + "/x.png"])
        expectRefused(r, naming: file.path, "render --out under a file")
        #expect(try String(contentsOf: file, encoding: .utf8) == "x")
    }

    @Test func aFullDiskIsAnErrorAndLeavesNoFile() throws {
        // RLIMIT_FSIZE makes every write past 512 bytes fail (EFBIG) as a full disk would (ENOSPC).
        let dir = CLI.tempDir()
        for ext in ["pdf", "png", "svg"] {
            let out = dir.appendingPathComponent("fig.\(ext)")
            let r = try MeasuredRun.kvscope(
                ["render", "modality", Self.example, "--out", out.path], shellPrefix: "trap '' XFSZ; ulimit -f 1")
            expectRefused(r, naming: out.path, "full disk .\(ext)")
            #expect(!r.stdout.contains("wrote"), "\(r.stdout)")
            #expect(!FileManager.default.fileExists(atPath: out.path))
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).isEmpty, "temporary files left")
        }
    }

    @Test func aFullDiskDuringAStreamedCacheIsAnErrorAndLeavesNoLayerFile() throws {
        // simulate --save-cache streams each layer file (tensor by tensor): a write that fails
        // part-way is one error naming the layer file, and neither it nor its temporary remains.
        let dir = CLI.tempDir().appendingPathComponent("cache")
        let r = try MeasuredRun.kvscope(
            ["simulate", Self.example, "--policy", "lookm", "--budget", "0.2", "--layers", "0", "--save-cache", dir.path],
            shellPrefix: "trap '' XFSZ; ulimit -f 1")
        let layer = dir.appendingPathComponent("layer_000.safetensors")
        expectRefused(r, naming: layer.path, "full disk --save-cache")
        #expect(!r.stdout.contains("wrote"), "\(r.stdout)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).isEmpty, "layer or temporary file left")
    }

    @Test func replacingAFileIsOneRename() throws {
        // The old file stays complete until the new one replaces it: same inode never truncated.
        let dir = CLI.tempDir()
        let out = dir.appendingPathComponent("fig.png")
        let first = try MeasuredRun.kvscope(["render", "modality", Self.example, "--out", out.path])
        #expect(first.status == 0, "\(first.stderr)")
        let old = try Data(contentsOf: out)
        let handle = try FileHandle(forReadingFrom: out)
        let second = try MeasuredRun.kvscope(["render", "modality", Self.example, "--out", out.path, "--title", "other"])
        #expect(second.status == 0, "\(second.stderr)")
        // The handle opened before still reads the complete old file (it was renamed over, not rewritten).
        #expect(try handle.readToEnd() == old)
        #expect(try Data(contentsOf: out) != old)
    }

    @Test func staleTemporariesAreRemovedAndSweepFilesAppearTogether() throws {
        let trace = try TestTrace.small().writeTemporaryFolder(roles: ["attn", "k"])
        let out = CLI.tempDir().appendingPathComponent("sweep")
        try FileManager.default.createDirectory(at: out.appendingPathComponent(".parts"), withIntermediateDirectories: true)
        // Temporary files of a killed process (pid 2^22 + 7 does not run).
        let stale = [out.appendingPathComponent(".results.csv.tmp-4194311"), out.appendingPathComponent(".parts/.x_L000.json.tmp-4194311")]
        for s in stale { try Data("partial".utf8).write(to: s) }
        let args = ["sweep", trace.path, "--policies", "h2o", "--budgets", "0.2", "--out", out.path, "--resume"]
        let r = try MeasuredRun.kvscope(args, timeout: 300)
        #expect(r.status == 0, "\(r.stderr)")
        for s in stale { #expect(!FileManager.default.fileExists(atPath: s.path), "\(s.lastPathComponent) survived") }
        let left = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.contains(".tmp-") }
        #expect(left.isEmpty, "\(left)")
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("results.json").path))
        // A results.csv without results.json is an unfinished sweep, not a finished one.
        try FileManager.default.removeItem(at: out.appendingPathComponent("results.json"))
        try FileManager.default.removeItem(at: out.appendingPathComponent(".parts"))
        let again = try MeasuredRun.kvscope(Array(args.dropLast()))
        expectRefused(again, naming: out.path, "csv without json")
        #expect(again.stderr.contains("unfinished"), "\(again.stderr)")
    }
}
