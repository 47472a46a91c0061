import Foundation
import KVTrace
import Testing
import KVTestSupport

@Suite("kvscope CLI")
struct CLITests {
    @Test func infoJSONDescribesTheTrace() throws {
        let dir = try TestTrace.small().writeTemporaryFolder(roles: ["attn", "k"])
        let r = try CLI.run(["info", dir.path, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(j["layers"] as? Int == 2 && j["query_heads"] as? Int == 4 && j["kv_heads"] as? Int == 2)
        #expect(j["kv_head_of_query_head"] as? [Int] == [0, 0, 1, 1])
        #expect(j["seq_len"] as? Int == 10 && j["prefill_len"] as? Int == 8 && j["head_dim"] as? Int == 4)
        let images = j["images"] as! [[String: Any]]
        #expect(images.count == 1 && images[0]["start"] as? Int == 2 && images[0]["grid"] as? [Int] == [2, 2])
        let layers = j["layer_tensors"] as! [[String: Any]]
        let names = (layers[1]["tensors"] as! [[String: Any]]).map { $0["name"] as! String }
        #expect(names == ["attn", "k"])
        #expect((j["errors"] as! [String]).isEmpty)
        #expect((j["bytes_on_disk"] as! Int) > 400)
    }

    @Test func infoTextListsSpans() throws {
        let r = try CLI.run(["info", try TestTrace.small().writeTemporaryFolder(roles: ["attn", "k"]).path])
        #expect(r.status == 0)
        #expect(r.stdout.contains("image  2 ..< 6  (4 tokens)  image 0 [2, 6) grid 2×2"))
        #expect(r.stdout.contains("KV heads        2  (GQA: kv0←q0-1 kv1←q2-3)"))
    }

    @Test(
        "bad input: one line on stderr and exit status 2",
        arguments: [
            (["info", "/nonexistent/trace"], "no such file or folder"),
            (["info", "PLACEHOLDER", "--grid", "axb"], "The value 'axb' is invalid for '--grid <RxC>'"),
            (["info", "PLACEHOLDER", "--attn", "x"], "mapping flags (--attn, --keys, …) apply to bare"),
            (["info", "PLACEHOLDER", "--prefill-len", "0"], "--prefill-len must be ≥ 1"),
            (["info", "PLACEHOLDER", "--no-such-flag"], "Unknown option '--no-such-flag'"),
            (["frobnicate"], "Unexpected argument 'frobnicate'"),
        ])
    func badInput(args: [String], expected: String) throws {
        let dir = try TestTrace.small().writeTemporaryFolder(roles: ["attn", "k"])
        let r = try CLI.run(args.map { $0 == "PLACEHOLDER" ? dir.path : $0 })
        #expect(r.status == 2)
        #expect(r.stderr.contains(expected), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    @Test func malformedLayerFileExitsTwo() throws {
        let dir = try TestTrace.small().writeTemporaryFolder(roles: ["attn", "k"])
        let f = dir.appendingPathComponent("layer_001.safetensors")
        let d = try Data(contentsOf: f)
        try d.prefix(d.count - 7).write(to: f)
        let r = try CLI.run(["info", dir.path])
        #expect(r.status == 2)
        #expect(r.stderr.contains("layer_001.safetensors") && r.stderr.contains("truncated"), "\(r.stderr)")
    }

    @Test func memoryCapIsCheckedBeforeAllocating() throws {
        let url = CLI.tempDir().appendingPathComponent("big.npz")
        let fixture = CLI.repo.appendingPathComponent("Tests/KVTraceTests/Fixtures/deflated.npz")
        try FileManager.default.copyItem(at: fixture, to: url)
        let r = try CLI.run(["info", url.path, "--attn", "f32"], env: ["KVSCOPE_MEMORY_CAP": "64"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("above the memory cap of 64 bytes"), "\(r.stderr)")
    }

    @Test func nanInTraceIsAnErrorButInfoStillReports() throws {
        let dir = try TestTrace.small().writeTemporaryFolder(roles: ["attn", "k"])
        let f = dir.appendingPathComponent("layer_000.safetensors")
        var d = try Data(contentsOf: f)
        d[d.count - 2] = 0x00; d[d.count - 1] = 0x7E  // last k element: F16 NaN
        try d.write(to: f)
        let r = try CLI.run(["info", dir.path, "--json"])
        #expect(r.status == 2)
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect((j["errors"] as! [String]).first?.contains("layer 0: tensor 'k' holds NaN or Inf") == true)
    }

    @Test func helpExplainsTheFlags() throws {
        let r = try CLI.run(["info", "--help"])
        #expect(r.status == 0)
        for flag in [
            "--attn", "--colsum", "--keys", "--values", "--queries", "--modality", "--token-kind", "--prefill-len", "--layout", "--tril",
            "--image-spans", "--placeholders", "--grid", "--kv-map", "--json",
        ] {
            #expect(r.stdout.contains(flag), "help lacks \(flag)")
        }
    }

    @Test(.enabled(if: CLI.sharedExists, "needs ../shared beside the project"))
    func realPseudoImageTrace() throws {
        let r = try CLI.run(["info", CLI.shared.appendingPathComponent("traces/smollm2-pseudoimg2x64-full").path, "--json"])
        #expect(r.status == 0)
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(j["layers"] as? Int == 30 && j["query_heads"] as? Int == 9 && j["kv_heads"] as? Int == 3)
        let images = j["images"] as! [[String: Any]]
        #expect(images.map { $0["start"] as! Int } == [37, 105] && images.map { $0["stop"] as! Int } == [101, 169])
        #expect(j["synthetic_image_tokens"] as? Bool == true)
    }

    @Test(.enabled(if: CLI.sharedExists, "needs ../shared beside the project"))
    func oracleFixtureWithMappingFlags() throws {
        let r = try CLI.run([
            "info", CLI.shared.appendingPathComponent("fixtures/lookm-oracle/s2_text_light.npz").path,
            "--attn", "in_attention", "--keys", "in_keys", "--values", "in_values", "--queries", "in_queries",
            "--token-kind", "in_token_kind", "--json",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(j["seq_len"] as? Int == 200 && j["query_heads"] as? Int == 2 && j["head_dim"] as? Int == 128)
        let images = j["images"] as! [[String: Any]]
        #expect(images.map { [$0["start"] as! Int, $0["stop"] as! Int] } == [[20, 68], [74, 122], [128, 176]])
        let t = (j["layer_tensors"] as! [[String: Any]])[0]["tensors"] as! [[String: Any]]
        #expect(t.first { $0["name"] as? String == "attn" }?["shape"] as? [Int] == [2, 200, 200])
    }
}

@Suite("kvscope synth")
struct SynthCLITests {
    @Test func llavaPresetHasThreeImagesOf576() throws {
        let out = CLI.tempDir().appendingPathComponent("llava")
        let r = try CLI.run(["synth", out.path, "--preset", "llava-1.5", "--layers", "1", "--heads", "2", "--head-dim", "16"])
        #expect(r.status == 0, "\(r.stderr)")
        let info = try CLI.run(["info", out.path, "--json"])
        let j = try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as! [String: Any]
        let images = j["images"] as! [[String: Any]]
        #expect(images.count == 3)
        for img in images {
            #expect((img["stop"] as! Int) - (img["start"] as! Int) == 576 && img["grid"] as? [Int] == [24, 24])
        }
        #expect(j["query_rows"] as? [String: Int] == ["start": 2328 - 32, "stop": 2344])
        #expect((j["errors"] as! [String]).isEmpty && (j["warnings"] as! [String]).isEmpty, "\(j["warnings"]!)")
    }

    @Test func sameSeedIdenticalFilesAndRefusesToOverwrite() throws {
        let a = CLI.tempDir().appendingPathComponent("t"), b = CLI.tempDir().appendingPathComponent("t")
        #expect(try CLI.run(["synth", a.path, "--seed", "7"]).status == 0)
        #expect(try CLI.run(["synth", b.path, "--seed", "7"]).status == 0)
        for f in try FileManager.default.contentsOfDirectory(atPath: a.path) {
            #expect(try Data(contentsOf: a.appendingPathComponent(f)) == Data(contentsOf: b.appendingPathComponent(f)), "\(f)")
        }
        let again = try CLI.run(["synth", a.path])
        #expect(again.status == 2 && again.stderr.contains("already exists; pass --force"))
        let bad = try CLI.run(["synth", CLI.tempDir().appendingPathComponent("c").path, "--heads", "6", "--kv-heads", "4"])
        #expect(bad.status == 2 && bad.stderr.contains("--heads must be a positive multiple of --kv-heads"))
    }
}
