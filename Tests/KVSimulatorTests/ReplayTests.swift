import Foundation
import KVPolicies
import KVTrace
import Testing
@testable import KVSimulator

@Suite struct ReplayTests {
    @Test func fullCacheIsExact() throws {
        let t = TestTrace(.init(layers: 2, heads: 4, kvHeads: 2, dim: 8, prefill: 32, future: 8, spans: [8 ..< 16, 20 ..< 24], seed: 7))
        for b in [0.1, 0.5] {
            let r = try Replay(trace: t).runSync(FullCache(), budget: .fraction(b))
            for l in [nil, 0, 1] as [Int?] {
                #expect(r.value("attention_recall", layer: l) == 1)
                #expect(r.value("output_error", layer: l) == 0)
                #expect(r.value("output_error_evict", layer: l) == 0)
                #expect(r.value("topk_recall", layer: l) == 1)
                #expect(r.value("recall_image", layer: l) == 1)
            }
        }
    }

    @Test func oracleBoundsEveryEvictionPolicy() throws {
        let traces = [
            TestTrace(.init(layers: 2, heads: 4, kvHeads: 2, dim: 8, prefill: 32, future: 8, spans: [8 ..< 16, 20 ..< 24], seed: 7)),
            TestTrace(.init(layers: 2, heads: 4, kvHeads: 4, dim: 8, prefill: 32, future: 8, spans: [8 ..< 16, 20 ..< 24], seed: 3)),
        ]
        let ids = ["h2o", "h2o-sinks", "streaming", "snapkv", "text-prior", "tova", "knorm", "random", "pyramidkv", "adakv"]
        for t in traces {
            for id in ids {
                for b in [0.1, 0.3] {
                    let policy = try PolicyRegistry.make(id)
                    for l in t.info.recordedLayers {
                        let ctx = LayerContext(info: t.info, tensors: try t.layer(l), budget: .fraction(b))
                        let ec = EvaluationContext(ctx, settings: .init())
                        let d = try policy.decide(ctx)
                        let oracle = try Oracle(counts: d.actual).decide(ctx)
                        let mine = try AttentionRecall().evaluate(ReplayLayer(d, merges: false, context: ec), ec)
                        let best = try AttentionRecall().evaluate(ReplayLayer(oracle, merges: false, context: ec), ec)
                        // Per KV head: mean over its query heads.
                        for g in 0 ..< t.info.shape.kvHeads {
                            let hs = t.info.shape.queryHeads(ofKVHead: g)
                            let a = hs.map { mine[$0].value! }.reduce(0, +), o = hs.map { best[$0].value! }.reduce(0, +)
                            #expect(o >= a - 1e-12, "\(id) at \(b), layer \(l), KV head \(g): oracle \(o) < \(a)")
                        }
                    }
                }
            }
        }
    }

    @Test func mergingPolicyRunsAndOmitsEvictEstimate() throws {
        let t = TestTrace(.init(layers: 2, heads: 4, kvHeads: 2, dim: 8, prefill: 32, future: 8, spans: [8 ..< 16, 20 ..< 24], seed: 7))
        let r = try Replay(trace: t).runSync(try PolicyRegistry.make("lookm"), budget: .fraction(0.2))
        #expect(r.value("output_error_evict") == nil)
        let e = try #require(r.value("output_error"))
        #expect(e > 0 && e < 1)
        #expect(r.value("cache_bytes") == r.rows.filter { $0.metric == "cache_bytes" && $0.layer != nil }.compactMap(\.value).reduce(0, +))
    }

    @Test func compressionPointChoosesRows() throws {
        let t = TestTrace(.init(layers: 2, heads: 4, kvHeads: 2, dim: 8, prefill: 32, future: 8, spans: [8 ..< 16, 20 ..< 24], seed: 7))
        let r = try Replay(trace: t, compressionPoint: 20).runSync(try PolicyRegistry.make("h2o"), budget: .fraction(0.5))
        #expect(r.compressionPoint == 20)
        #expect(r.rows.allSatisfy { $0.evalRows == .future && $0.evalRowCount == 20 && $0.compressionPoint == 20 })
        #expect(r.value("kept_tokens") == 10)
    }

    @Test func summaryTableListsMetrics() throws {
        let r = try Replay(
            trace: TestTrace(.init(layers: 2, heads: 4, kvHeads: 2, dim: 8, prefill: 32, future: 8, spans: [8 ..< 16, 20 ..< 24], seed: 7))
        ).runSync(try PolicyRegistry.make("h2o"), budget: .fraction(0.2))
        let s = SummaryTable.render(r)
        for id in ["attention_recall", "output_error", "recall_image", "image_retention[1]", "cache_bytes"] { #expect(s.contains(id)) }
        #expect(s.contains("8 future"))
    }
}
