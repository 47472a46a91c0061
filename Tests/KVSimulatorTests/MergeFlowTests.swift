import Foundation
@testable import KVPolicies
import KVTestSupport
import KVTrace
import Testing
@testable import KVSimulator

/// A fixed decision, run through the engine as a merging policy.
private struct FixedDecision: CachePolicy {
    var decision: LayerDecision
    var id: String { "fixed" }
    var requirements: Requirements { [] }
    func decide(_ context: LayerContext) throws -> LayerDecision { decision }
}

/// `merge_flow` against values computed by hand, and its identities on a random trace.
@Suite struct MergeFlowTests {
    /// T = 7, P = 6, two KV heads (one query head each), D = 2. Positions: 0 text, 1–2 image 0,
    /// 3–4 image 1, 5 text; row 6 (the one future row) attends A = [0.1, 0.2, 0.05, 0.15, 0.1, 0.25, 0.15]
    /// in both heads.
    static let attention = [0.1, 0.2, 0.05, 0.15, 0.1, 0.25, 0.15]
    static func trace() -> TestTrace {
        let T = 7
        let k = (0 ..< 2 * T).flatMap { [1.0 + Double($0 % T), 0.5] }
        return TestTrace(
            H: 2, G: 2, D: 2, T: T, P: 6, queryRows: 6 ..< 7,
            modality: [.text, .image, .image, .image, .image, .text, .text],
            images: [ImageSpan(id: 0, positions: 1 ..< 3), ImageSpan(id: 1, positions: 3 ..< 5)], scale: 1,
            layerData: [(attn: attention + attention, q: [1, 0, 1, 0], k: k, v: k)])
    }
    /// Head 0 keeps 0, 2, 5 and merges 1 → slot 1 (position 2, image 0) and 3 → slot 0 (position 0,
    /// text); 4 is dropped. Head 1 keeps 0, 1, 5 and merges nothing (2, 3, 4 dropped).
    static let decision = LayerDecision(
        layer: 0,
        heads: [
            HeadDecision(
                kept: [0, 2, 5], evicted: [1, 3, 4],
                merges: [
                    MergeContribution(source: 1, slot: 1, sourceWeight: 0.5, pivotWeight: 0.5, cosine: 0.9),
                    MergeContribution(source: 3, slot: 0, sourceWeight: 0.5, pivotWeight: 0.5, cosine: 0.8),
                ]),
            HeadDecision(kept: [0, 1, 5], evicted: [2, 3, 4]),
        ], nominal: 3, prefill: 6)

    static func rows(
        _ decision: LayerDecision = decision, configuration: PolicyConfiguration = PolicyConfiguration("lookm"),
        metrics: [any Metric] = [MergeFlow(), AttentionRecall()], perHead: Bool = true
    ) throws -> [ResultRow] {
        let run = PlannedRun(
            policy: FixedDecision(decision: decision), configuration: configuration, budget: .fraction(0.5), options: .init())
        return try LayerEngine.run(trace: trace(), layer: 0, runs: [run], metrics: metrics, settings: EvaluationSettings(perHead: perHead))
    }

    static func value(_ rows: [ResultRow], _ metric: String, _ s: String, _ t: String, head: Int? = nil) -> Double? {
        rows.first { $0.metric == metric && $0.source == s && $0.target == t && $0.head == head }?.value
    }

    @Test("counts and attention shares per source → target, by head and over heads, dropped included")
    func handComputed() throws {
        let rows = try Self.rows()
        let groups = ["text", "image 0", "image 1"], targets = groups + ["dropped"]
        // Every pair is a series, for counts and attention, over heads and per head.
        #expect(rows.filter { $0.metric == "merge_flow" && $0.head == nil }.count == 12)
        #expect(rows.filter { $0.metric == "merge_flow_attention" && $0.head == 1 }.count == 12)
        #expect(
            rows.filter { $0.metric.hasPrefix("merge_flow") }.allSatisfy { groups.contains($0.source!) && targets.contains($0.target!) })
        // Head 0: image 0 → image 0 (position 1), image 1 → text (3), image 1 → dropped (4).
        let c0: [String: Double] = ["image 0|image 0": 1, "image 1|text": 1, "image 1|dropped": 1]
        let a0: [String: Double] = ["image 0|image 0": 0.2, "image 1|text": 0.15, "image 1|dropped": 0.1]
        // Head 1: everything dropped: image 0 → dropped (2), image 1 → dropped (3, 4).
        let c1: [String: Double] = ["image 0|dropped": 1, "image 1|dropped": 2]
        let a1: [String: Double] = ["image 0|dropped": 0.05, "image 1|dropped": 0.25]
        for s in groups {
            for t in targets {
                let k = "\(s)|\(t)"
                #expect(Self.value(rows, "merge_flow", s, t, head: 0) == c0[k] ?? 0, "\(k)")
                #expect(Self.value(rows, "merge_flow", s, t, head: 1) == c1[k] ?? 0, "\(k)")
                #expect(Self.value(rows, "merge_flow", s, t) == ((c0[k] ?? 0) + (c1[k] ?? 0)) / 2, "\(k)")
                #expect(abs(Self.value(rows, "merge_flow_attention", s, t, head: 0)! - (a0[k] ?? 0)) < 1e-15, "\(k)")
                #expect(abs(Self.value(rows, "merge_flow_attention", s, t, head: 1)! - (a1[k] ?? 0)) < 1e-15, "\(k)")
                #expect(abs(Self.value(rows, "merge_flow_attention", s, t)! - ((a0[k] ?? 0) + (a1[k] ?? 0)) / 2) < 1e-15, "\(k)")
            }
        }
        // attention_recall + Σ merge_flow_attention = 1: head 0 keeps 0.1 + 0.05 + 0.25 (+ 0.15 generated).
        let recall = try #require(rows.first { $0.metric == "attention_recall" && $0.head == 0 }?.value)
        #expect(abs(recall - 0.55) < 1e-15)
        let moved = rows.filter { $0.metric == "merge_flow_attention" && $0.head == 0 }.compactMap(\.value).reduce(0, +)
        #expect(abs(recall + moved - 1) < 1e-15)
    }

    @Test("eviction-only policies have no merge_flow rows; the CSV has source and target columns")
    func onlyForMergingPolicies() throws {
        let evict = LayerDecision(
            layer: 0, heads: Self.decision.heads.map { HeadDecision(kept: $0.kept, evicted: $0.evicted) }, nominal: 3, prefill: 6)
        let rows = try Self.rows(evict, configuration: PolicyConfiguration("h2o"))
        #expect(!rows.contains { $0.metric.hasPrefix("merge_flow") })
        #expect(rows.contains { $0.metric == "attention_recall" })
        let merged = try Self.rows(perHead: false)
        let csv = ResultWriter.csv(merged + LayerEngine.aggregate(merged, metrics: [MergeFlow()]))
        let header = csv.split(separator: "\n")[0].split(separator: ",").map(String.init)
        let (si, ti, mi) = (header.firstIndex(of: "source")!, header.firstIndex(of: "target")!, header.firstIndex(of: "merge_scope")!)
        let line = csv.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            .first {
                $0.count == header.count && $0[si] == "image 1" && $0[ti] == "dropped"
                    && $0[header.firstIndex(of: "metric")!] == "merge_flow"
            }
        #expect(line?[header.firstIndex(of: "value")!] == "1.5")
        #expect(line?[mi] == "all")
        let recall = csv.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            .first { $0.count == header.count && $0[header.firstIndex(of: "metric")!] == "attention_recall" }
        #expect(recall?[si] == "" && recall?[ti] == "")
    }

    @Test(
        "lookm on the test trace: scope modality moves nothing across modalities, and image tokens without a kept image token are dropped")
    func scopesOnATrace() throws {
        let trace = TestTrace()
        func sweep(_ scope: MergeScope?) throws -> ReplayResult {
            let policy = try PolicyConfiguration.parse("lookm", scope: scope).make()
            return try Replay(trace: trace).runSync(
                policy, budget: .fraction(0.1), metrics: [MergeFlow(), AttentionRecall(), KeptTokens()])
        }
        let all = try sweep(nil), modality = try sweep(.modality)
        #expect(modality.combination.configuration.label == "lookm+scope=modality")
        let P = trace.info.shape.prefillLen
        for l in trace.info.recordedLayers {
            let ctx = try LayerContext(trace: trace, layer: l, budget: .fraction(0.1))
            let d = try PolicyConfiguration.parse("lookm").make().decide(ctx)
            // Text prior keeps every text token here and no image token: each head evicts all 12 tokens of each image.
            #expect(d.heads.allSatisfy { h in !h.kept.contains { !ctx.isText[$0] } })
            for k in ["image 0", "image 1"] {
                #expect(all.value("merge_flow", layer: l, source: k, target: "dropped") == 0)
                #expect(all.value("merge_flow", layer: l, source: k, target: "text") == 12)
                #expect(modality.value("merge_flow", layer: l, source: k, target: "dropped") == 12)
                for t in ["text", "image 0", "image 1"] { #expect(modality.value("merge_flow", layer: l, source: k, target: t) == 0) }
                #expect(modality.value("merge_flow_attention", layer: l, source: k, target: "text") == 0)
            }
            #expect(modality.value("merge_flow", layer: l, source: "text", target: "image 0") == 0)
            #expect(modality.value("merge_flow", layer: l, source: "text", target: "dropped") == 0)
            // attention_recall + Σ merge_flow_attention = 1 on every layer, under both scopes.
            for r in [all, modality] {
                let moved = r.rows.filter { $0.metric == "merge_flow_attention" && $0.layer == l && $0.head == nil }.compactMap(\.value)
                    .reduce(0, +)
                #expect(abs(r.value("attention_recall", layer: l)! + moved - 1) < 1e-12)
            }
        }
        // Text flows are the same under both scopes (text is merged into text either way here).
        #expect(all.value("merge_flow", source: "text", target: "text") == modality.value("merge_flow", source: "text", target: "text"))
        #expect(P == 48)
    }
}
