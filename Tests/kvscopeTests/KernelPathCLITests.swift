import Foundation
import Testing

/// The C kernels pick AMX, AVX-512, AVX2 or scalar code by CPU; every form must give the same
/// results. On a machine with AMX or AVX-512 the other forms only run when turned off, so the same
/// run is made four times (`KVSCOPE_NO_AMX`, `KVSCOPE_NO_AVX512`, `KVSCOPE_NO_AVX2`) and the
/// outputs compared byte for byte: this covers the logits (`ck_dot_rows`, SnapKV's recomputed
/// window rows and the merged slots'), the value accumulation and the merge search (whose bf16
/// tile pre-pass must settle no row differently). The trace is large enough for the tile form
/// (at least 16 evicted and 32 kept tokens per head).
@Suite struct KernelPathCLITests {
    @Test("every instruction-set form of the kernels gives the same results", arguments: ["snapkv-lookm", "lookm"])
    func sameBitsOnEveryPath(policy: String) throws {
        let dir = CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let trace = dir.appendingPathComponent("t").path
        let s = try CLI.run([
            "synth", trace, "--layers", "2", "--heads", "4", "--kv-heads", "2", "--head-dim", "36", "--grid", "12x12",
            "--text-len", "60", "--generate", "6",
        ])
        try #require(s.status == 0, "\(s.stderr)")
        var outputs: [String] = []
        for env in [[:], ["KVSCOPE_NO_AMX": "1"], ["KVSCOPE_NO_AVX512": "1"], ["KVSCOPE_NO_AVX2": "1"]] {
            let r = try CLI.run(
                [
                    "simulate", trace, "--policy", policy, "--hh-ratio", "0.2", "--recent-ratio", "0.1", "--metrics", "--json",
                ], env: env)
            #expect(r.status == 0, "\(env): \(r.stderr)")
            outputs.append(r.stdout)
        }
        #expect(outputs[0].contains("output_error"))
        #expect(outputs.allSatisfy { $0 == outputs[0] })
    }
}
