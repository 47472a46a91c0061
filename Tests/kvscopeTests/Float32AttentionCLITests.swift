import Foundation
import KVTrace
import Testing

/// `simulate --save-cache` on float32 attention (column sums summed straight from the mapped rows)
/// writes the very bytes it writes when the same attention is given as float64 (the widened path).
@Suite struct Float32AttentionCLITests {
    @Test("float32 and float64 attention give byte-identical saved caches", arguments: ["lookm", "h2o", "snapkv-lookm"])
    func float32MatchesFloat64(policy: String) throws {
        let H = 3, T = 45, D = 8
        var rng = SplitMix64(seed: 21)
        func uniform() -> Float { Float(Double(rng.next() >> 11) / 9_007_199_254_740_992.0) }
        // Causal rows with weights over many binades, so that a reordered sum would differ.
        var a = [Float](repeating: 0, count: H * T * T)
        for h in 0 ..< H {
            for i in 0 ..< T {
                let w = (0 ... i).map { _ in uniform() * Float(sign: .plus, exponent: Int(rng.next() % 24) - 12, significand: 1) }
                let s = w.reduce(0, +)
                for j in 0 ... i { a[(h * T + i) * T + j] = w[j] / s }
            }
        }
        let k = (0 ..< H * T * D).map { _ in uniform() - 0.5 }, v = (0 ..< H * T * D).map { _ in uniform() - 0.5 }
        let q = (0 ..< H * T * D).map { _ in uniform() - 0.5 }
        let dir = CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        func write(_ name: String, _ x: [Float], _ shape: [Int], _ dtype: DType) throws {
            try NPYWriter.write(TensorData(name: name, floats: x, shape: shape, as: dtype), to: dir.appendingPathComponent(name + ".npy"))
        }
        try write("attn32", a, [H, T, T], .f32)
        try write("attn64", a, [H, T, T], .f64)
        for (name, x) in [("k", k), ("v", v), ("q", q)] { try write(name, x, [H, T, D], .f32) }
        var caches: [Data] = []
        for attn in ["attn32", "attn64"] {
            let out = dir.appendingPathComponent("cache-\(attn)")
            let r = try CLI.run([
                "simulate", dir.appendingPathComponent(attn + ".npy").path, "--attn", attn + ".npy", "--keys", "k.npy",
                "--values", "v.npy", "--queries", "q.npy", "--image-spans", "5:20,24:38", "--policy", policy,
                "--hh-ratio", "0.2", "--recent-ratio", "0.1", "--save-cache", out.path,
            ])
            #expect(r.status == 0, "\(r.stderr)")
            caches.append(try Data(contentsOf: out.appendingPathComponent("layer_000.safetensors")))
        }
        #expect(caches[0].count > 1000)
        #expect(caches[0] == caches[1])
    }
}
