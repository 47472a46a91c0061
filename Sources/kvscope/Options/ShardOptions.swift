import ArgumentParser
import Foundation
import KVSimulator

/// A `--shard` value: `i/n` (shard i of n, 1-based), `slurm` (i and n from the Slurm array task:
/// `i = SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN + 1`, `n = SLURM_ARRAY_TASK_COUNT`), or `slurm/N`
/// (`n = N`, `i = SLURM_ARRAY_TASK_ID + 1` for an array indexed 0…N−1, so one task resubmitted alone
/// with `sbatch --array=K` is still shard K+1 of N; the scripts of `kvscope slurm` use this form).
/// The range of `i/n` is checked by `ShardOptions.validate`, so its message names the numbers.
enum ShardArgument: Hashable, ExpressibleByArgument, CustomStringConvertible {
    case fixed(index: Int, count: Int)
    case slurm(count: Int?)

    init?(argument: String) {
        let a = argument.trimmingCharacters(in: .whitespaces).lowercased()
        if a == "slurm" { self = .slurm(count: nil); return }
        let p = a.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard p.count == 2, p[0].count <= 9, p[1].count <= 9, let n = Int(p[1]), p[1].allSatisfy(\.isASCII) else { return nil }
        if p[0] == "slurm" { self = .slurm(count: n); return }
        guard let i = Int(p[0]), p[0].allSatisfy(\.isASCII) else { return nil }
        self = .fixed(index: i, count: n)
    }

    var description: String {
        switch self {
        case let .fixed(i, n): "\(i)/\(n)"
        case let .slurm(n): n.map { "slurm/\($0)" } ?? "slurm"
        }
    }

    /// The shard, with Slurm's variables read from `environment`; a problem is one line naming `--shard`.
    func resolve(_ environment: [String: String]) throws -> ShardSpec {
        switch self {
        case let .fixed(i, n):
            guard n >= 1, n <= ShardSpec.maxCount else { throw ValidationError("--shard \(self): n must be in 1…\(ShardSpec.maxCount)") }
            guard let s = ShardSpec(index: i, count: n) else { throw ValidationError("--shard \(self): i must be in 1…\(n)") }
            return s
        case let .slurm(count):
            func int(_ k: String) throws -> Int? {
                guard let v = environment[k], !v.isEmpty else { return nil }
                guard let x = Int(v.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--shard \(self): \(k)='\(v)' is not an integer")
                }
                return x
            }
            guard let id = try int("SLURM_ARRAY_TASK_ID") else {
                throw ValidationError(
                    "--shard \(self): not inside a Slurm array job (SLURM_ARRAY_TASK_ID is not set); use --shard i/n outside Slurm")
            }
            let i: Int, n: Int
            if let count {
                (i, n) = (id + 1, count)
            } else {
                guard let c = try int("SLURM_ARRAY_TASK_COUNT") else {
                    throw ValidationError("--shard slurm: SLURM_ARRAY_TASK_COUNT is not set")
                }
                (i, n) = (id - (try int("SLURM_ARRAY_TASK_MIN") ?? 0) + 1, c)
            }
            guard n >= 1, n <= ShardSpec.maxCount, let s = ShardSpec(index: i, count: n) else {
                throw ValidationError(
                    "--shard \(self): array task \(id) is not shard 1…\(n) (use an array --array=0-\(max(0, n - 1)), without steps)")
            }
            return s
        }
    }
}

/// `--shard` for `sweep` (and `explore`): run one deterministic slice of the cells into
/// `OUT/shards/i-of-n/`; `kvscope collect OUT` merges the slices.
struct ShardOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Run only shard i of n of the cells (trace × setting × layer, balanced by cost) into OUT/shards/i-of-n/; `kvscope collect OUT` merges them. `slurm`: i and n from the Slurm array task.",
            valueName: "i/n|slurm"))
    var shard: ShardArgument?

    /// The resolved shard (nil: the whole sweep), read once the arguments are parsed.
    func spec(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ShardSpec? {
        try shard?.resolve(environment)
    }

    func validate() throws { _ = try spec() }

    /// The command line as recorded in `results.json`: without `--shard` and `--resume`, which change
    /// how the work is scheduled but not the results, so a sharded, resumed and single-process run
    /// of one command record the same line.
    static func recordedCommandLine(_ argv: [String] = CommandLine.arguments) -> [String] {
        var out: [String] = []
        var skip = false
        for a in argv {
            if skip { skip = false; continue }
            if a == "--shard" { skip = true; continue }
            if a.hasPrefix("--shard=") || a == "--resume" { continue }
            out.append(a)
        }
        return out
    }
}
