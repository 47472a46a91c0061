import ArgumentParser
import Foundation
import KVSimulator

/// `kvscope collect OUT`: merges the shards of a sweep into `OUT/results.csv` and `OUT/results.json`.
struct CollectCommand: ExampledCommand {
    static let examples = SweepCommand.shardExamples

    static let configuration = CommandConfiguration(
        commandName: "collect",
        abstract: "Merge the shards of a sharded sweep or explore (OUT/shards/i-of-n/) into results.csv and results.json (and safe.csv).",
        discussion: """
            Reads every OUT/shards/i-of-n/ written by `kvscope sweep … --shard i/n -o OUT` (or by the Slurm \
            array of `kvscope slurm sweep`), checks that they are the n shards of one command (same command \
            line apart from --shard and --resume, same traces, same kvscope version, same n), and writes \
            OUT/results.csv and OUT/results.json byte-identical to what the single-process sweep writes; for \
            the shards of `kvscope explore … --shard i/n` also OUT/safe.csv, byte-identical to the single-process \
            explore's (rerun that explore with --resume to draw its ratio maps from the shards, recomputing nothing). \
            A missing or unfinished shard, or one of another command, is refused with one line naming its \
            folder, and nothing is written. The shards are left in place; collecting again rewrites the \
            same files.
            """ + "\n\n" + HelpExample.section(examples)
    )

    @Argument(help: ArgumentHelp("The --output folder of the sharded sweep.", valueName: "out"))
    var out: String
    @Flag(name: .customLong("json"), help: "Print the summary as JSON.")
    var json = false

    func run() throws {
        let outURL = URL(fileURLWithPath: out)
        let collected = try ShardCollector.collect(outURL)
        guard ["sweep", "explore"].contains(collected.manifest.command) else {
            throw CLIError(
                "\(outURL.appendingPathComponent("shards").path): shards of `\(collected.manifest.command)`, which collect does not merge")
        }
        try ShardCollector.write(collected, to: outURL)
        let m = collected.manifest
        let summary = SweepSummary(
            collected.rows, combinations: m.totalCells / max(1, m.layers.reduce(0) { $0 + $1.count }),
            traces: m.layers.count, csv: outURL.appendingPathComponent("results.csv").path,
            json: outURL.appendingPathComponent("results.json").path)
        let safe =
            m.explore == nil
            ? "" : "wrote \(outURL.appendingPathComponent("safe.csv").path); for the ratio maps rerun the explore with --resume\n"
        print(
            json ? try summary.jsonText() : "collected \(m.shard.count) shard(s), \(m.totalCells) cells\n" + summary.text + safe,
            terminator: "")
    }
}
