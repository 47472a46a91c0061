import Foundation
import KVPolicies
import KVTrace
import Testing
@testable import KVSimulator

@Suite struct SweepTests {
    func tmp() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("kvsim-\(UUID().uuidString)")
    }

    func meta(_ n: Int) -> SweepMetadata {
        SweepMetadata(
            kvscopeVersion: "test", commandLine: ["test"], traces: [], policies: [], budgets: [], fidelities: [],
            metrics: [], topK: 16, proxyWindow: 32, rowCount: n)
    }

    func combos(_ ids: [String], _ budgets: [Double]) -> [Combination] {
        ids.flatMap { id in budgets.map { Combination(policy: id, budget: .fraction($0)) } }
    }

    @Test func csvIsTidyAndRowCountIsExact() throws {
        let t = TestTrace(.init(layers: 2, heads: 4, kvHeads: 2, dim: 8, prefill: 32, future: 8, spans: [8 ..< 16, 20 ..< 24], seed: 7))
        let out = tmp()
        defer { try? FileManager.default.removeItem(at: out) }
        let s = Sweep(traces: [(path: "mem", source: t)], combinations: combos(["full", "h2o", "lookm"], [0.1, 0.5]))
        let rows = try s.run(out: out, resume: false, metadata: meta)
        // Series: 12 families, recall_/retention_ expand to text+image (+1 each), image_retention and
        // image_recall to 2 images (+1 each).
        let series = 16
        // lookm (2 budgets) adds merge_flow: 3 groups (text, image 0, image 1) × 4 targets (+ dropped) × counts and attention.
        let flow = 3 * 4 * 2
        #expect(rows.count == 6 * series * (2 + 1) + 2 * flow * (2 + 1))
        let csv = try String(contentsOf: out.appendingPathComponent("results.csv"), encoding: .utf8)
        let lines = csv.split(separator: "\n", omittingEmptySubsequences: false)
        let header = (ResultWriter.leadingColumns + ["score"] + ResultWriter.trailingColumns).joined(separator: ",")
        #expect(lines.first.map(String.init) == header)  // h2o's one parameter, `score`, is the one parameter column
        #expect(lines.count == rows.count + 2)  // header + trailing newline
        #expect(csv.contains("undefined for merging policies"))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("results.json"))) as! [String: Any]
        #expect((json["rows"] as! [Any]).count == rows.count)
        // Deterministic: the same sweep gives the same bytes.
        let out2 = tmp()
        defer { try? FileManager.default.removeItem(at: out2) }
        try s.run(out: out2, resume: false, metadata: meta)
        #expect(try String(contentsOf: out2.appendingPathComponent("results.csv"), encoding: .utf8) == csv)
    }

    @Test func resumeSkipsFinishedWorkAndLosesNothing() throws {
        let t = TestTrace(.init(layers: 3, heads: 4, kvHeads: 2, dim: 8, prefill: 32, future: 8, spans: [8 ..< 16, 20 ..< 24], seed: 7))
        let out = tmp()
        defer { try? FileManager.default.removeItem(at: out) }
        let all = combos(["h2o", "streaming", "snapkv"], [0.2, 0.4])
        let reference = try Sweep(traces: [(path: "mem", source: t)], combinations: all).run(out: tmp(), resume: false, metadata: meta)
        // An "interrupted" sweep: only part of the combinations, and one layer part lost.
        try Sweep(traces: [(path: "mem", source: t)], combinations: Array(all.prefix(3))).run(out: out, resume: false, metadata: meta)
        let parts = out.appendingPathComponent(".parts")
        let files = try FileManager.default.contentsOfDirectory(atPath: parts.path).sorted()
        try FileManager.default.removeItem(at: parts.appendingPathComponent(files[1]))
        try FileManager.default.removeItem(at: out.appendingPathComponent("results.csv"))
        // Without --resume the folder is refused.
        #expect(throws: SimulatorError.self) {
            try Sweep(traces: [(path: "mem", source: t)], combinations: all).run(out: out, resume: false, metadata: meta)
        }
        let resumed = try Sweep(traces: [(path: "mem", source: t)], combinations: all).run(out: out, resume: true, metadata: meta)
        #expect(resumed == reference)
    }

    @Test(.enabled(if: sharedExists, "needs ../shared beside the project"))
    func smollm2ChatSweep() throws {
        let path = sharedDir.appendingPathComponent("traces/smollm2-chat-full").path
        let t = try TraceLoader.open(path)
        let out = tmp()
        defer { try? FileManager.default.removeItem(at: out) }
        let ids = ["full", "streaming", "h2o", "snapkv", "text-prior", "lookm", "oracle"]
        let rows = try Sweep(traces: [(path: path, source: t)], combinations: combos(ids, [0.05, 0.1, 0.2, 0.3, 0.5]))
            .run(out: out, resume: false, metadata: meta)
        // Text-only: 12 series (recall_text, retention_text, image_retention and image_recall omitted), 30 layers + all.
        // lookm (5 budgets) adds merge_flow text → text and text → dropped, counts and attention.
        #expect(rows.count == 35 * 12 * 31 + 5 * 4 * 31)
        #expect(rows.allSatisfy { $0.evalRows == .future && $0.evalRowCount == 64 })
        let full = rows.filter { $0.policy == "full" && $0.layer == nil }
        #expect(full.first { $0.metric == "attention_recall" }?.value == 1)
        #expect(full.first { $0.metric == "output_error" }?.value == 0)
        for b in ["fraction=0.1;recent_share=0.5", "fraction=0.3;recent_share=0.5"] {
            func recall(_ p: String) -> Double {
                rows.first { $0.policy == p && $0.budgetSpec == b && $0.layer == nil && $0.metric == "attention_recall" }!.value!
            }
            for p in ["streaming", "h2o", "snapkv"] { #expect(recall("oracle") >= recall(p)) }
        }
        let lines = try String(contentsOf: out.appendingPathComponent("results.csv"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count == rows.count + 1)
    }
}
