import KVTrace

/// `random`: a lower bound. Keeps the recent window `r` plus `hh` positions drawn uniformly
/// without replacement from `[0, P−r)`, independently per (layer, KV head), ascending.
///
/// Reproducible everywhere from `seed` (the run's `--seed`, default 0): SplitMix64 seeded per
/// (layer, KV head) by a fixed mix of `seed`, `layer` and `kvHead`; Lemire's multiply-and-reject
/// bounded integers; a partial Fisher–Yates shuffle. Needs nothing from the trace.
public struct RandomEviction: DeclaredPolicy {
    public init() {}
    public init(parameters: ParameterValues) {}

    public static let declaration = PolicyDeclaration(
        id: "random", summary: "recent window + hh uniform random positions, seeded (--seed)", paper: "a lower bound",
        requirements: [], traits: [.usesRecent, .keepsExactlyC], color: 0xBBBBBB,
        rule: """
            Keeps the recent window r plus hh positions drawn uniformly without replacement from 0 ..< P−r, \
            independently per (layer, KV head), ascending. Reproducible from --seed (default 0): SplitMix64 \
            seeded per (layer, KV head) from the seed, the layer and the head; Lemire's bounded integers; a \
            partial Fisher–Yates shuffle.
            """)

    public func decide(_ context: LayerContext) throws -> LayerDecision {
        if let d = context.wholeIfWithinBudget() { return d }
        let P = context.compressionPoint, b = context.budget
        let n = P - b.recent
        let heads = (0 ..< context.kvHeads).map { g -> HeadDecision in
            var rng = SplitMix64(seed: SplitMix64.mix(context.options.seed, UInt64(context.layer), UInt64(g)))
            var pool = Array(0 ..< n)
            let k = min(b.heavy, n)
            for i in 0 ..< k {
                let j = i + Int(rng.bounded(UInt64(n - i)))
                pool.swapAt(i, j)
            }
            return HeadDecision(kept: pool[0 ..< k].sorted() + Array(n ..< P), prefill: P)
        }
        return LayerDecision(layer: context.layer, heads: heads, nominal: b.nominal, prefill: P)
    }
}

extension SplitMix64 {
    /// A uniform integer in `0 ..< bound` by Lemire's multiply-and-reject method.
    public mutating func bounded(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let t = (0 &- bound) % bound
            while m.low < t { m = next().multipliedFullWidth(by: bound) }
        }
        return m.high
    }
    /// The fixed seed mix of (seed, layer, head).
    public static func mix(_ seed: UInt64, _ layer: UInt64, _ head: UInt64) -> UInt64 {
        var r = SplitMix64(seed: seed)
        var x = r.next()
        r = SplitMix64(seed: x ^ (layer &* 0xD1B5_4A32_D192_ED03))
        x = r.next()
        r = SplitMix64(seed: x ^ (head &* 0x8CB9_2BA7_2F3D_8DD7))
        return r.next()
    }
}
