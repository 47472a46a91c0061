import Foundation
import Testing
import KVTrace
@testable import KVPolicies

/// The Ada-KV reference fixtures (`Fixtures/adakv/`, made by `make_adakv_fixtures.py` from the
/// authors' `AdaptiveSnapKVCluster.update_kv` and kvpress's `AdaKVPress` run on CPU).
enum AdaKVFixtures {
    static let dir = Fixtures.repoRoot.appendingPathComponent("Tests/KVPoliciesTests/Fixtures/adakv")

    struct Manifest: Decodable {
        struct Case: Decodable {
            var `case`: String
            var heads: Int
            var kv_heads: Int
            var seq_len: Int
            var runs: [Run]
        }
        struct Run: Decodable {
            var run: String
            var reference: String
            var budget: Int
            var compression_ratio: Double?
            var window: Int
            var kernel: Int
            var pooling: String
            var alpha: Double
            var gqa_func: String
            var kept_per_head: [Int]
        }
        var cases: [Case]
    }

    static let manifest: Manifest = {
        let data = try! Data(contentsOf: dir.appendingPathComponent("manifest.json"))
        return try! JSONDecoder().decode(Manifest.self, from: data)
    }()

    /// Every (case, run) pair, as "case/run".
    static let runs: [String] = manifest.cases.flatMap { c in c.runs.map { "\(c.case)/\($0.run)" } }

    static func lookup(_ id: String) -> (Manifest.Case, Manifest.Run) {
        let parts = id.split(separator: "/").map(String.init)
        let c = manifest.cases.first { $0.case == parts[0] }!
        return (c, c.runs.first { $0.run == parts[1] }!)
    }

    static func trace(_ c: String) throws -> (NPZArchive, BareTrace) {
        let url = dir.appendingPathComponent(c + ".npz")
        var m = BareArrayMapping()
        m.attn = "in_attention"
        m.keys = "in_keys"
        m.values = "in_values"
        m.queries = "in_queries"
        return (try NPZArchive(url), try BareTrace(url, mapping: m))
    }

    /// KVScope's setting for a run: `adakv` with the run's safeguard, window, kernel and pooling; the
    /// authors' budget as tokens, kvpress's as the fraction `1 − compression_ratio` (its `int(L·(1−cr))`).
    static func setting(_ r: Manifest.Run) -> (params: [String: String], budget: BudgetSpec, gqa: GQAReduction) {
        let params = [
            "safeguard": r.reference, "alpha": String(r.alpha), "window": String(r.window), "kernel": String(r.kernel),
            "pooling": r.pooling == "maxpool" ? "max" : "avg",
        ]
        let budget: BudgetSpec = r.compression_ratio.map { .fraction(1 - $0) } ?? .tokens(r.budget)
        return (params, budget, r.gqa_func == "max" ? .max : .mean)
    }

    /// A run's case, its fixture archive, KVScope's layer context (code fidelity) and `adakv` parameters.
    static func load(_ id: String) throws -> (c: Manifest.Case, r: Manifest.Run, z: NPZArchive, ctx: LayerContext, params: [String: String])
    {
        let (c, r) = lookup(id)
        let (z, trace) = try trace(c.case)
        let (params, budget, gqa) = setting(r)
        let ctx = try LayerContext(trace: trace, layer: 0, budget: budget, options: PolicyOptions(fidelity: .code, gqa: gqa))
        return (c, r, z, ctx, params)
    }
}

@Suite("Ada-KV against both reference codes")
struct AdaKVFixtureTests {
    @Test("code fidelity keeps the reference's positions in every head", arguments: AdaKVFixtures.runs)
    func keptSetsMatch(_ id: String) throws {
        let (_, r, z, ctx, params) = try AdaKVFixtures.load(id)
        #expect(ctx.budget.nominal == r.budget, "\(id): budget \(ctx.budget.nominal), the reference's \(r.budget)")
        let d = try PolicyRegistry.make("adakv", parameters: params).decide(ctx)
        let counts = try z.array("out__\(r.run)__counts").ints()
        let flat = try z.array("out__\(r.run)__kept").ints()
        var at = 0
        var expected: [[Int]] = []
        for n in counts { expected.append(flat[at ..< at + n].sorted()); at += n }
        #expect(counts == r.kept_per_head)
        #expect(d.heads.map(\.kept.count) == counts, "\(id): per-head counts")
        #expect(d.heads.map(\.kept) == expected, "\(id): kept positions differ")
    }

    @Test("the scores are the reference's", arguments: AdaKVFixtures.runs)
    func scoresMatch(_ id: String) throws {
        let (c, r, z, ctx, params) = try AdaKVFixtures.load(id)
        let policy = try #require(try PolicyRegistry.make("adakv", parameters: params) as? AdaKV)
        let mine = try policy.scorer.scores(ctx)
        let ref = try z.array("out__\(r.run)__scores").doubles()
        // KVScope sums the window rows where both references average them: the same order. The
        // authors' code averages and pools in float32 (its inputs cannot be float64), kvpress in float64.
        let n = c.seq_len - r.window
        let scale = Double(r.window)
        let tolerance = r.reference == "authors" ? 1e-6 : 1e-12
        var bad = 0
        for g in 0 ..< c.kv_heads {
            for j in 0 ..< n {
                let a = mine[g, j] / scale, b = ref[g * (r.reference == "kvpress" ? c.seq_len : n) + j]
                if abs(a - b) > tolerance * abs(b) + 1e-15 { bad += 1 }
            }
        }
        #expect(mine.rows == c.kv_heads && mine.count == n)
        #expect(bad == 0, "\(id): \(bad) scores differ from the reference's")
    }

    @Test("the fixtures exercise what differs: ragged heads, a missed total, a safeguard floor")
    func fixturesCoverTheQuirks() throws {
        var ragged = false, missed = false, atP = false
        for c in AdaKVFixtures.manifest.cases {
            for r in c.runs {
                if Set(r.kept_per_head).count > 1 { ragged = true }
                if r.reference == "authors", r.kept_per_head.reduce(0, +) != c.kv_heads * r.budget { missed = true }
                if r.reference == "authors", r.budget == c.seq_len, r.kept_per_head.contains(where: { $0 < c.seq_len }) { atP = true }
            }
        }
        #expect(ragged && missed && atP)
    }

    @Test("intended repairs the authors' total to KVH·C; the two safeguards differ", arguments: AdaKVFixtures.manifest.cases.map(\.case))
    func intendedRepairsTheTotal(_ name: String) throws {
        let (_, trace) = try AdaKVFixtures.trace(name)
        let c = AdaKVFixtures.manifest.cases.first { $0.case == name }!
        let params = ["alpha": "0.3", "window": "8", "kernel": "7"]
        for C in [24, 40] {
            let ctx = try LayerContext(trace: trace, layer: 0, budget: .tokens(C), options: PolicyOptions(fidelity: .intended))
            let d = try PolicyRegistry.make("adakv", parameters: params).decide(ctx)
            #expect(d.actual.reduce(0, +) == c.kv_heads * C, "\(name) C=\(C): \(d.actual)")
        }
        let ctx = try LayerContext(trace: trace, layer: 0, budget: .tokens(40), options: PolicyOptions(fidelity: .code))
        let a = try PolicyRegistry.make("adakv", parameters: params.merging(["alpha": "0.5"]) { $1 }).decide(ctx)
        let k = try PolicyRegistry.make("adakv", parameters: params.merging(["alpha": "0.5", "safeguard": "kvpress"]) { $1 }).decide(ctx)
        #expect(a.heads != k.heads)
    }

    @Test func authorsCapacityIsFloat32Arithmetic() {
        // torch.round(torch.tensor([c]) * (1 − α) + 2) on CPU (torch 2.13), against the Double result.
        for (c, alpha, torch, double) in [(85, 0.3, 62, 61), (110, 0.45, 62, 63), (30, 0.55, 16, 15), (15, 0.7, 6, 7)] {
            #expect(AdaKV.authorsCapacity(count: c, alpha: alpha, floor: 2) == torch)
            #expect(Int((Double(c) * (1 - alpha) + 2).rounded(.toNearestOrEven)) == double)
        }
        #expect(AdaKV.authorsCapacity(count: 3, alpha: 0.5, floor: 1) == 2)  // 2.5 → 2, half to even
    }
}
