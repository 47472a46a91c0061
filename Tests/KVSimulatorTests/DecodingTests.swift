import Foundation
import KVPolicies
import KVTestSupport
import KVTrace
import Testing
@testable import KVSimulator

/// Replay through decoding (docs/metrics.md#replay-through-decoding).
@Suite struct DecodingTests {
    static let trace = TestTrace(.init(layers: 2, heads: 4, kvHeads: 2, dim: 16, prefill: 48, future: 8, seed: 5))

    static func run(
        _ id: String, _ d: DecodingReplay, budget: BudgetSpec = .fraction(0.25), trace: any TraceSource = trace,
        metrics: [any Metric] = MetricCatalogue.all
    ) throws -> ReplayResult {
        try Replay(trace: trace, settings: EvaluationSettings(decoding: d)).runSync(
            try PolicyRegistry.make(id), budget: budget, metrics: metrics)
    }

    /// Look-once: at the last step every series, every layer, equals the replay at one moment (the
    /// running means add the same row values in the same order).
    @Test(arguments: ["h2o", "snapkv", "lookm", "streaming"])
    func lastStepOfLookOnceEqualsReplay(_ id: String) throws {
        let once = try Replay(trace: Self.trace).runSync(try PolicyRegistry.make(id), budget: .fraction(0.25))
        let steps = try Self.run(id, DecodingReplay())
        #expect(steps.steps == Array(1 ... 8))
        var compared = 0
        for r in once.rows where r.head == nil {
            let s = steps.rows.first {
                $0.metric == r.metric && $0.layer == r.layer && $0.head == nil && $0.image == r.image && $0.source == r.source
                    && $0.target == r.target && $0.step == 8
            }
            #expect(s != nil, "\(r.metric) layer \(String(describing: r.layer))")
            guard let s else { continue }
            if let a = r.value, let b = s.value {
                #expect(abs(a - b) <= 1e-12, "\(id) \(r.metric) layer \(String(describing: r.layer)): \(a) vs \(b)"); compared += 1
            } else {
                #expect(r.value == nil && s.value == nil, "\(id) \(r.metric): defined in one replay only")
            }
        }
        #expect(compared > 20)
        // Step 1 measures only row P: attention_recall differs from the mean over all rows.
        #expect(steps.value("attention_recall", step: 1) != steps.value("attention_recall", step: 8))
    }

    /// An independent recomputation of H2O run again after every generated token, from the recorded
    /// attention alone: accumulated column sums, top hh of the cache outside the last r, and the
    /// recall of each row against the cache it saw, averaged over rows up to t, heads and layers;
    /// and the prompt tokens the cache holds at each step (mean over KV heads and layers).
    static func handH2O(budget b: Double) throws -> (recall: [Double], prompt: [Double]) {
        let info = trace.info
        let H = info.shape.queryHeads, G = info.shape.kvHeads, T = info.shape.seqLen, P = info.shape.prefillLen
        let C = Int(Double(P) * b), r = Int(Double(C) * 0.5), hh = C - r
        let map = info.shape.kvHeadOfQueryHead
        var perLayer: [[Double]] = [], promptPerLayer: [[Double]] = []
        for l in info.recordedLayers {
            let a = try trace.layer(l).attention!.doubles()  // [H, T, T]: every row recorded
            func A(_ h: Int, _ i: Int, _ j: Int) -> Double { a[(h * T + i) * T + j] }
            var score = [[Double]](repeating: [Double](repeating: 0, count: T), count: G)
            for h in 0 ..< H { for i in 0 ..< P { for j in 0 ... i { score[map[h]][j] += A(h, i, j) } } }
            func keep(_ cached: [Int], _ g: Int) -> [Int] {
                let n = cached.count
                guard n > C else { return cached }
                let cands = Array(cached[0 ..< n - r])
                // Highest score first, ties to the lower position (the project's tie rule).
                let top = Set(cands.sorted { score[g][$0] != score[g][$1] ? score[g][$0] > score[g][$1] : $0 < $1 }.prefix(hh))
                return cands.filter { top.contains($0) } + cached[(n - r)...]
            }
            var cache = (0 ..< G).map { keep(Array(0 ..< P), $0) }
            var sums = [Double](repeating: 0, count: H)
            var series: [Double] = [], prompt: [Double] = []
            for (t, i) in (P ..< T).enumerated() {
                prompt.append(Double(cache.map { $0.filter { $0 < P }.count }.reduce(0, +)) / Double(G))
                for h in 0 ..< H {
                    let visible = cache[map[h]] + [i]
                    let total = (0 ... i).reduce(0.0) { $0 + A(h, i, $1) }
                    sums[h] += visible.reduce(0.0) { $0 + A(h, i, $1) } / total
                }
                series.append(sums.reduce(0, +) / Double(H) / Double(t + 1))
                for h in 0 ..< H { for j in 0 ... i { score[map[h]][j] += A(h, i, j) } }
                for g in 0 ..< G { cache[g] = keep(cache[g] + [i], g) }
            }
            perLayer.append(series)
            promptPerLayer.append(prompt)
        }
        func mean(_ x: [[Double]]) -> [Double] { (0 ..< x[0].count).map { t in x.map { $0[t] }.reduce(0, +) / Double(x.count) } }
        return (mean(perLayer), mean(promptPerLayer))
    }

    @Test func h2oRecompressedEveryStepEqualsStepByStepRecomputation() throws {
        let (expected, prompt) = try Self.handH2O(budget: 0.25)
        let options = PolicyOptions(gqa: .sum)
        let replay = Replay(trace: Self.trace, settings: EvaluationSettings(decoding: DecodingReplay(recompressEvery: 1)))
        let got = try replay.runSync(H2O(), budget: .fraction(0.25), options: options, metrics: [AttentionRecall(), KeptTokens()])
        #expect(got.steps.count == expected.count)
        for (k, e) in expected.enumerated() {
            let v = try #require(got.value("attention_recall", step: k + 1))
            #expect(abs(v - e) < 1e-12, "step \(k + 1): \(v) vs \(e)")
        }
        // The cache holds C = 12 after every step, so its prompt part shrinks as generated tokens arrive.
        for (k, e) in prompt.enumerated() { #expect(got.value("kept_tokens", step: k + 1) == e, "step \(k + 1)") }
        #expect(prompt[0] == 12 && prompt[7] < 12)
        // Look-once keeps more of the prompt, so the two differ after the first step.
        let once = try Replay(trace: Self.trace, settings: EvaluationSettings(decoding: DecodingReplay()))
            .runSync(H2O(), budget: .fraction(0.25), options: options, metrics: [AttentionRecall()])
        #expect(once.value("attention_recall", step: 1) == got.value("attention_recall", step: 1))
        #expect(once.value("attention_recall", step: 8) != got.value("attention_recall", step: 8))
    }

    /// H2O's decode rule is H2O itself run on the cache after each token: the two what-ifs agree.
    @Test func evictPerStepIsH2ORecompressedEveryStep() throws {
        let a = try Self.run("h2o", DecodingReplay(evictPerStep: true))
        let b = try Self.run("h2o", DecodingReplay(recompressEvery: 1))
        for r in a.rows where r.head == nil {
            let s = b.rows.first {
                $0.metric == r.metric && $0.layer == r.layer && $0.head == nil && $0.image == r.image && $0.source == r.source
                    && $0.target == r.target && $0.step == r.step
            }
            #expect(s?.value == r.value || abs((s?.value ?? .nan) - (r.value ?? .nan)) < 1e-12, "\(r.metric) step \(r.step ?? 0)")
        }
    }

    /// The full cache stays exact at every step, also when it is "compressed" again (nothing leaves).
    @Test func fullCacheStaysExactUnderEveryWhatIf() throws {
        for d in [DecodingReplay(), DecodingReplay(recompressEvery: 2)] {
            let r = try Self.run("full", d)
            for t in r.steps {
                #expect(r.value("attention_recall", step: t) == 1)
                #expect(r.value("output_error", step: t) == 0)
            }
        }
    }

    /// The decoding table has one column per flow series (`merge_flow[text→image 0]`, …), each with
    /// its own value at every step; a series keyed by metric and image alone showed one
    /// `merge_flow` column of "—".
    @Test func stepTableShowsEveryFlowSeries() throws {
        let trace = TestTrace(
            .init(layers: 2, heads: 4, kvHeads: 2, dim: 16, prefill: 48, future: 8, spans: [8 ..< 20, 28 ..< 40], seed: 5))
        let r = try Self.run(
            "lookm", DecodingReplay(), budget: .fraction(0.2), trace: trace, metrics: [MergeFlow(), KeptTokens()])
        let flows = r.rows.filter { $0.metric == MergeFlow.id && $0.layer == nil && $0.head == nil && $0.step == r.steps.last }
        let shown = flows.filter { f in
            r.rows.contains {
                $0.metric == MergeFlow.id && $0.layer == nil && $0.head == nil && $0.source == f.source && $0.target == f.target
                    && ($0.value ?? 0) != 0
            }
        }
        #expect(shown.count >= 2, "the trace should give several non-zero flows")
        let lines = SummaryTable.renderSteps(r).split(separator: "\n").map(String.init)
        for f in shown { #expect(lines[0].contains("merge_flow[\(f.source!)→\(f.target!)]"), "header: \(lines[0])") }
        #expect(!lines[0].contains("merge_flow "), "no merge_flow column without its groups")
        // The last step's line: the step, then each shown flow's value, then kept_tokens (and the
        // other series of KeptTokens).
        let last = try #require(lines.first { $0.split(separator: " ").first == Substring(String(r.steps.last!)) })
        let cells = last.split(separator: " ").map(String.init)
        #expect(!cells.contains("—"))
        func count(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(format: "%.1f", v) }
        let kept = try #require(r.value("kept_tokens", step: r.steps.last))
        #expect(Array(cells.dropFirst().prefix(shown.count + 1)) == shown.map { count($0.value!) } + [count(kept)])
    }

    @Test func withoutGeneratedRowsIsAnError() throws {
        let prefillOnly = TestTrace(.init(layers: 1, prefill: 48, future: 0))
        #expect(throws: SimulatorError.self) { try Self.run("h2o", DecodingReplay(), trace: prefillOnly) }
        #expect(DecodingReplay(recompressEvery: 0).problem != nil)
        #expect(DecodingReplay(recompressEvery: 2, evictPerStep: true).problem != nil)
    }

    @Test func mergingPoliciesCannotEvictAgain() throws {
        #expect(throws: SimulatorError.self) { try Self.run("lookm", DecodingReplay(evictPerStep: true)) }
        // Look-once decoding of a merging policy works.
        #expect(try Self.run("lookm", DecodingReplay()).value("output_error", step: 8) != nil)
    }

    @Test func stepIsANumericCSVColumn() throws {
        let r = try Self.run("h2o", DecodingReplay(), metrics: [AttentionRecall()])
        let csv = ResultWriter.csv(r.rows).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        let col = try #require(csv[0].firstIndex(of: "step"))
        #expect(Set(csv.dropFirst().map { Int($0[col]) }) == Set((1 ... 8).map { Optional($0) }))
        let once = try Replay(trace: Self.trace).runSync(H2O(), budget: .fraction(0.25), metrics: [AttentionRecall()])
        #expect(
            ResultWriter.csv(once.rows).split(separator: "\n").dropFirst().allSatisfy {
                $0.split(separator: ",", omittingEmptySubsequences: false)[col].isEmpty
            })
    }
}
