import Foundation
@testable import KVPolicies
import KVTrace
import Testing
@testable import KVSimulator

/// Every metric against values computed by hand on the 4-token, one-head trace of `TestTrace.hand`:
/// row 3 gives A = [0.4, 0.1, 0.2, 0.3], values v = (1,0), (0,1), (1,1), (0,2).
@Suite struct HandMetricTests {
    let keep02 = LayerDecision(layer: 0, heads: [HeadDecision(kept: [0, 2], prefill: 3)], nominal: 2, prefill: 3)

    @Test func evictionMetrics() throws {
        let (_, ec, m) = try evaluate(.hand(), decision: keep02)
        #expect(ec.kind == .future && ec.rows == 3 ..< 4)
        #expect(m["kept_tokens"]?.value == 2)
        #expect(abs(m["kept_ratio"]!.value! - 2.0 / 3) < 1e-15)
        #expect(m["cache_bytes"]?.value == Double(2 * 2 * 2 * 8))  // 2 tokens · D 2 · K and V · f64
        #expect(abs(m["attention_recall"]!.value! - 0.9) < 1e-12)  // (0.4 + 0.2 + 0.3) / 1
        #expect(abs(m["recall_text"]!.value! - 1.0) < 1e-12)  // (0.4 + 0.2) / (0.4 + 0.2)
        #expect(m["recall_image"]!.value! == 0)  // 0 / 0.1
        #expect(m["topk_recall"]?.value == 1)  // top-2 = {0, 2} ⊂ S
        #expect(m["retention_text"]?.value == 1)
        #expect(m["retention_image"]?.value == 0)
        #expect(m["image_retention[0]"]?.value == 0)
    }

    @Test func topKCountsMisses() throws {
        let d = LayerDecision(layer: 0, heads: [HeadDecision(kept: [1, 2], prefill: 3)], nominal: 2, prefill: 3)
        let (_, _, m) = try evaluate(.hand(), decision: d)
        #expect(m["topk_recall"]?.value == 0.5)  // top-2 {0, 2}: only 2 kept
        #expect(abs(m["attention_recall"]!.value! - 0.6) < 1e-12)  // 0.1 + 0.2 + 0.3
    }

    @Test func outputErrorOfEviction() throws {
        let (_, _, m) = try evaluate(.hand(), decision: keep02)
        // o = (0.6, 0.9); o' = (0.4·(1,0) + 0.2·(1,1) + 0.3·(0,2)) / 0.9 = (2/3, 8/9).
        let o = (0.6, 0.9), p = (2.0 / 3, 8.0 / 9)
        let err = ((o.0 - p.0) * (o.0 - p.0) + (o.1 - p.1) * (o.1 - p.1)).squareRoot() / (o.0 * o.0 + o.1 * o.1).squareRoot()
        let cos = (o.0 * p.0 + o.1 * p.1) / ((o.0 * o.0 + o.1 * o.1).squareRoot() * (p.0 * p.0 + p.1 * p.1).squareRoot())
        #expect(abs(m["output_error"]!.value! - err) < 1e-12)
        #expect(abs(m["output_error_evict"]!.value! - err) < 1e-12)  // exact for eviction
        #expect(abs(m["output_cosine"]!.value! - cos) < 1e-12)
        #expect(abs(err - 0.0624838) < 1e-6)
    }

    @Test func outputErrorWithMergedKV() throws {
        // Pivotal merge of position 1 into slot 0 (position 0): K' = (K0 + ½K1 + ½K0)/2 = ¾K0 + ¼K1, V' likewise.
        let merge = MergeContribution(source: 1, slot: 0, sourceWeight: 0.5, pivotWeight: 0.5, cosine: 1)
        let d = LayerDecision(layer: 0, heads: [HeadDecision(kept: [0, 2], evicted: [1], merges: [merge])], nominal: 2, prefill: 3)
        let (_, _, m) = try evaluate(.hand(), decision: d, merges: true)
        // Logit of the merged key: q·k' = ¾ ln 0.4 + ¼ ln 0.1, so its weight is 0.4^¾ · 0.1^¼ (row max is 0 → exp(·)).
        let w = Foundation.pow(0.4, 0.75) * Foundation.pow(0.1, 0.25)
        let z = w + 0.2 + 0.3
        let p = ((w * 0.75 + 0.2) / z, (w * 0.25 + 0.2 + 0.6) / z)
        let o = (0.6, 0.9)
        let err = ((o.0 - p.0) * (o.0 - p.0) + (o.1 - p.1) * (o.1 - p.1)).squareRoot() / (o.0 * o.0 + o.1 * o.1).squareRoot()
        #expect(abs(m["output_error"]!.value! - err) < 1e-12)
        // Merged-away tokens count as lost in recall; the eviction estimate is undefined.
        #expect(abs(m["attention_recall"]!.value! - 0.9) < 1e-12)
        #expect(m["output_error_evict"]?.value == nil)
        #expect(m["output_error_evict"]?.note?.contains("merging") == true)
        // The same K', V' as DecisionApplier.
        let ctx = LayerContext(info: TestTrace.hand().info, tensors: try TestTrace.hand().layer(0), budget: .fraction(1))
        let applied = DecisionApplier.apply(d, keys: try ctx.keys(), values: try ctx.values())
        #expect(abs(applied.heads[0].keys[0] - (0.75 * Foundation.log(0.4) + 0.25 * Foundation.log(0.1))) < 1e-15)
        #expect(applied.heads[0].values[0] == 0.75 && applied.heads[0].values[1] == 0.25)
    }

    @Test func omittedMetricsCarryANote() throws {
        let (_, _, m) = try evaluate(.hand(withQueries: false), decision: keep02)
        #expect(m["output_error"]?.value == nil)
        #expect(m["output_error"]?.note?.contains("needs q") == true)
        #expect(m["output_cosine"]?.value == nil)
        #expect(m["output_error_evict"]?.value != nil)  // needs rows and v only
        // Through the replay: an omitted metric is an empty value with a note, never 0.
        let r = try Replay(trace: TestTrace.hand(withQueries: false)).runSync(FullCache(), budget: .tokens(2, recentShare: 0.5))
        let row = try #require(r.row("output_error"))
        #expect(row.value == nil && row.note?.contains("needs q") == true)
    }

    @Test func proxyRowsAreFlagged() throws {
        // P = T = 4: no future rows; the evaluation uses the last W prefill rows (all four here).
        let t = TestTrace.hand(P: 4, rows: 0 ..< 4)
        let d = LayerDecision(layer: 0, heads: [HeadDecision(kept: [0, 2, 3], prefill: 4)], nominal: 3, prefill: 4)
        let (_, ec, m) = try evaluate(t, decision: d)
        #expect(ec.kind == .proxy && ec.rows == 0 ..< 4)
        // Row recalls: i=0: 1; i=1: 0.4/0.5; i=2: 0.6/0.7; i=3: 0.9/1.0.
        let expected = (1 + 0.8 + 0.6 / 0.7 + 0.9) / 4
        #expect(abs(m["attention_recall"]!.value! - expected) < 1e-12)
        let r = try Replay(trace: t).runSync(FullCache(), budget: .fraction(0.5))
        #expect(r.evalRows == .proxy)
        #expect(r.rows.allSatisfy { $0.evalRows == .proxy })
        #expect(SummaryTable.render(r).contains("proxy"))
    }

    @Test func imageRetentionOmittedWithoutImages() throws {
        var t = TestTrace.hand()
        t = TestTrace(
            H: 1, G: 1, D: 2, T: 4, P: 3, queryRows: 3 ..< 4, modality: [.text, .text, .text, .text], images: [],
            scale: 1, layerData: [(attn: [0.4, 0.1, 0.2, 0.3], q: [1, 0], k: nil, v: nil)])
        let r = try Replay(trace: t).runSync(FullCache(), budget: .fraction(0.5))
        let row = try #require(r.row("image_retention"))
        #expect(row.value == nil && row.note == "the trace has no image spans before P")
        #expect(r.row("recall_image") == nil)  // no image tokens: no series
        #expect(r.value("attention_recall") == 1)
    }
}
