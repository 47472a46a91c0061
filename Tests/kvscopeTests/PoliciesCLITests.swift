import Foundation
import Testing

@Suite("kvscope policies")
struct PoliciesCLITests {
    @Test("docs/policy-catalogue.md is exactly what `kvscope policies --markdown` prints")
    func catalogueIsCurrent() throws {
        let r = try CLI.run(["policies", "--markdown"])
        #expect(r.status == 0)
        let committed = try String(contentsOf: CLI.repo.appendingPathComponent("docs/policy-catalogue.md"), encoding: .utf8)
        #expect(r.stdout == committed, "regenerate with: kvscope policies --markdown -o docs/policy-catalogue.md")
    }

    @Test("one policy: its rule and typed parameters; --json carries the declaration")
    func onePolicy() throws {
        let r = try CLI.run(["policies", "SnapKV"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("snapkv: SnapKV") && r.stdout.contains("observation window") && r.stdout.contains("odd integer 1…1023"))
        let j = try CLI.run(["policies", "adakv", "--json"])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any])
        let params = try #require(obj["parameters"] as? [[String: Any]])
        #expect(params.map { $0["name"] as? String }.contains("safeguard"))
    }

    @Test("two bad parameters: every run names the same one (the first by name)")
    func badParametersAreReportedInOneOrder() throws {
        var messages: Set<String> = []
        for _ in 0 ..< 4 {
            let r = try CLI.run([
                "simulate", "Examples/traces/smollm2-pseudoimg2x64-gen16-w24", "--policy", "streaming", "--param", "window=8",
                "--param", "sink=2", "--budget", "0.2",
            ])
            #expect(r.status == 2)
            messages.insert(r.stderr)
        }
        #expect(messages.count == 1, "\(messages)")
        #expect(messages.first?.contains("'sink'") == true)
    }

    @Test(
        "unknown ids and parameters: one line with a suggestion, exit 2",
        arguments: [
            (["policies", "lookN"], "did you mean 'lookm'"),
            (["simulate", "Examples/traces/smollm2-pseudoimg2x64-gen16-w24", "--policy", "h2O,snapkv", "--budget", "0.2"], "sweep"),
            (
                [
                    "simulate", "Examples/traces/smollm2-pseudoimg2x64-gen16-w24", "--policy", "snapkv", "--param", "windw=8", "--budget",
                    "0.2",
                ], "did you mean 'window'"
            ),
            (
                [
                    "simulate", "Examples/traces/smollm2-pseudoimg2x64-gen16-w24", "--policy", "pyramidkv", "--param", "window=-1",
                    "--budget", "0.2",
                ], "outside 1…"
            ),
            (
                ["sweep", "Examples/traces/smollm2-pseudoimg2x64-gen16-w24", "--policies", "h2o", "--param", "window=8"],
                "no listed policy declares it"
            ),
            (
                ["simulate", "Examples/traces/smollm2-pseudoimg2x64-gen16-w24", "--policy", "h2o", "--budgets", "0.2"],
                "Unknown option '--budgets'"
            ),
            (
                ["simulate", "Examples/traces/smollm2-pseudoimg2x64-gen16-w24", "--policy", "h2o", "--foo", "1", "--budget", "0.2"],
                "Unknown option '--foo'"
            ),
            (
                ["simulate", "Examples/traces/smollm2-pseudoimg2x64-gen16-w24", "--policy", "lookm", "--merge-scope", "bogus"],
                "'bogus' is invalid for '--merge-scope"
            ),
            (
                ["simulate", "Examples/traces/smollm2-pseudoimg2x64-gen16-w24", "--policy", "h2o", "--merge-scope", "modality"],
                "does not merge; --merge-scope modality applies to merging policies"
            ),
            (
                ["sweep", "Examples/traces/smollm2-pseudoimg2x64-gen16-w24", "--policies", "h2o,snapkv", "--merge-scope", "modality"],
                "--merge-scope: no listed policy merges"
            ),
            (
                ["sweep", "Examples/traces/smollm2-pseudoimg2x64-gen16-w24", "--policies", "lookm", "--merge-scope", "all,nope"],
                "'all,nope' is invalid for '--merge-scope"
            ),
        ])
    func badInput(_ args: [String], _ expected: String) throws {
        let r = try CLI.run(args, cwd: CLI.repo)
        #expect(r.status == 2)
        #expect(r.stderr.contains(expected), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }
}

@Suite("kvscope metrics")
struct MetricsCLITests {
    @Test("every metric prints its definition; an unknown one is one line, exit 2")
    func definitions() throws {
        let r = try CLI.run(["metrics", "--json"])
        #expect(r.status == 0)
        let list = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        #expect(list.count >= 12)
        for m in list { #expect(((m["definition"] as? String) ?? "").count > 30, "\(m["id"] ?? "?")") }
        let one = try CLI.run(["metrics", "output_error"])
        #expect(one.status == 0 && one.stdout.contains("lower is better"))
        let flow = try CLI.run(["metrics", "merge_flow"])
        #expect(flow.status == 0 && flow.stdout.contains("merge_flow_attention") && flow.stdout.contains("dropped"))
        let bad = try CLI.run(["metrics", "attention_recal"])
        #expect(bad.status == 2 && bad.stderr.split(separator: "\n").count == 1)
    }
}

@Suite("--merge-scope")
struct MergeScopeCLITests {
    static let trace = "Examples/traces/smollm2-pseudoimg2x64-gen16-w24"

    @Test("simulate: the scope is in the policy label, merge_flow lists where image tokens went, and the dropped ones")
    func simulateScopes() throws {
        let all = try CLI.run(["simulate", Self.trace, "--policy", "lookm", "--budget", "0.2", "--metrics", "--json"], cwd: CLI.repo)
        let image = try CLI.run(
            ["simulate", Self.trace, "--policy", "lookm", "--budget", "0.2", "--metrics", "--json", "--merge-scope", "image"], cwd: CLI.repo
        )
        #expect(all.status == 0 && image.status == 0, "\(image.stderr)")
        func flows(_ r: CLI.Result) throws -> [String: Double] {
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            let rows = try #require(obj["metrics"] as? [[String: Any]] ?? obj["rows"] as? [[String: Any]], "\(obj.keys)")
            var out: [String: Double] = [:]
            for row in rows where row["metric"] as? String == "merge_flow" && row["layer"] == nil && row["head"] == nil {
                if let s = row["source"] as? String, let t = row["target"] as? String { out["\(s)→\(t)"] = row["value"] as? Double }
            }
            return out
        }
        let a = try flows(all), b = try flows(image)
        #expect(a.count == 3 * 4 && b.count == 12, "\(a)")
        // Official: no evicted image token is dropped, some merge into text. Image scope: none crosses.
        #expect(a["image 0→dropped"] == 0 && a["image 1→dropped"] == 0 && (a["image 0→text"] ?? 0) > 0)
        for k in ["image 0→text", "image 0→image 1", "image 1→text", "image 1→image 0"] { #expect(b[k] == 0, "\(k)") }
        #expect((b["image 0→dropped"] ?? 0) > 0)
        let text = try CLI.run(["simulate", Self.trace, "--policy", "lookm", "--budget", "0.2", "--merge-scope", "image"], cwd: CLI.repo)
        #expect(text.status == 0 && text.stdout.contains("lookm+scope=image"), "\(text.stdout.prefix(400))")
    }
}
