import Foundation
import KVPolicies
import KVTrace
import Testing
@testable import KVSimulator

@Suite struct ShardTests {
    func sweep(layers: Int = 5) -> Sweep {
        let combos = ["h2o", "lookm", "streaming"].flatMap { id in [0.1, 0.2, 0.4].map { Combination(policy: id, budget: .fraction($0)) } }
        return Sweep(
            traces: [
                (
                    path: "a",
                    source: TestTrace(
                        .init(layers: layers, heads: 4, kvHeads: 2, dim: 8, prefill: 32, future: 8, spans: [8 ..< 16, 20 ..< 24], seed: 7))
                ),
                (
                    path: "b",
                    source: TestTrace(
                        .init(layers: 2, heads: 4, kvHeads: 2, dim: 8, prefill: 32, future: 8, spans: [8 ..< 16, 20 ..< 24], seed: 7))
                ),
            ],
            combinations: combos)
    }

    @Test func everyCellGoesToExactlyOneShardAndCostsBalance() throws {
        let s = sweep()
        for n in [1, 2, 3, 7, 40] {
            var seen: [String: Int] = [:]
            var loads: [Double] = []
            for i in 1 ... n {
                let plan = ShardPlan(s, shard: ShardSpec(index: i, count: n)!)
                var load = 0.0, count = 0
                for (t, tr) in s.traces.enumerated() {
                    let sh = tr.source.info.shape
                    for l in tr.source.info.recordedLayers {
                        for c in plan.combinations(trace: t, layer: l) {
                            seen["\(t)/\(l)/\(c)", default: 0] += 1
                            load += Double(sh.queryHeads * sh.prefillLen * sh.seqLen) * (s.combinations[c].configuration.merges ? 2 : 1)
                            count += 1
                        }
                    }
                }
                #expect(count == plan.cellCount && plan.totalCells == 9 * 7)
                loads.append(load)
            }
            #expect(seen.count == 9 * 7 && seen.values.allSatisfy { $0 == 1 }, "n=\(n)")
            // Contiguous cost slices: every shard is within one (largest) cell of the mean.
            let biggest = s.traces.map {
                Double($0.source.info.shape.queryHeads * $0.source.info.shape.prefillLen * $0.source.info.shape.seqLen) * 2
            }.max()!
            let mean = loads.reduce(0, +) / Double(n)
            #expect(loads.allSatisfy { abs($0 - mean) <= biggest }, "n=\(n): \(loads)")
        }
    }

    @Test func shardSpecRefusesOutOfRange() {
        #expect(ShardSpec(index: 0, count: 3) == nil && ShardSpec(index: 4, count: 3) == nil && ShardSpec(index: 1, count: 0) == nil)
        #expect(ShardSpec(folderName: "2-of-3") == ShardSpec(index: 2, count: 3))
        #expect(ShardSpec(folderName: "02-of-3") == nil && ShardSpec(folderName: "x") == nil && ShardSpec(folderName: "4-of-3") == nil)
    }

    @Test func collectedShardsEqualTheSingleProcessSweep() throws {
        let s = sweep(layers: 3)
        let meta: (Int) -> SweepMetadata = { n in
            SweepMetadata(
                kvscopeVersion: "t", commandLine: ["t"], traces: [], policies: [], budgets: [], fidelities: [], metrics: [],
                topK: 16, proxyWindow: 32, rowCount: n)
        }
        let tmp = FileManager.default.temporaryDirectory
        let single = tmp.appendingPathComponent("kvsim-\(UUID().uuidString)"),
            sharded = tmp.appendingPathComponent("kvsim-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: single); try? FileManager.default.removeItem(at: sharded) }
        try s.run(out: single, resume: false, metadata: meta)
        for i in 1 ... 4 { try s.run(out: sharded, resume: false, shard: ShardSpec(index: i, count: 4), metadata: meta) }
        try ShardCollector.write(try ShardCollector.collect(sharded), to: sharded)
        for f in ["results.csv", "results.json"] {
            #expect(try Data(contentsOf: single.appendingPathComponent(f)) == Data(contentsOf: sharded.appendingPathComponent(f)), "\(f)")
        }
    }
}
