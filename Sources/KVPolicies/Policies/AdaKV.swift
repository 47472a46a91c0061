import Foundation
import KVTrace

/// `adakv`: Ada-KV head-adaptive budget allocation, a wrapper over a scorer (SnapKV by default).
///
/// Per layer, with the scorer's per-KV-head budget `B` (`C − w` for SnapKV), its protected
/// positions (the window `w`, kept in every head), `n = P − w` candidates and the safeguard share `α`:
/// * `authors` — the Ada-KV authors' code (`FFY0/AdaKV`, `AdaptiveSnapKVCluster.update_kv`): the
///   `KVH·B` slots go to the highest scores pooled across the layer's KV heads, giving head `h` a
///   count `c_h`; head `h` then keeps its own top `round(c_h·(1−α) + ⌊α·B⌋)`. In `code` fidelity
///   this is the reference's arithmetic exactly: `c_h·(1−α)` and the sum are float32 (an integer
///   tensor times a Python float), rounded half to even, so the total may miss `KVH·B` by a few
///   slots either way; the cache is compressed even at `C = P` (the reference skips only `B > n`),
///   where the rounding can drop a position. `intended` gives head `h` `c_h·(1−α) + α·B` (the floor
///   untruncated, so the shares add up to `KVH·B`), rounded by largest remainder to exactly `KVH·B`,
///   and keeps the whole cache at `C ≥ P`. With GQA the scores are combined per KV head
///   before pooling, as that code's `gqa_support` path does (it matters for `--gqa mean` with max
///   pooling, the authors' setting).
/// * `kvpress` — kvpress's `AdaKVPress` over `SnapKVPress`: `α` is a share of the whole kept count
///   `C`, window included. The window scores highest and takes the safeguard first, so each head
///   first keeps its own top `max(0, ⌊α·C⌋ − w)` candidates; the remaining `KVH·B` slots go to the
///   pooled top scores. Scores are pooled per query head, then combined (kvpress's order).
///
/// At `α = 0` both are the plain pooled top-k. Ties go to the lower head, then the lower position.
/// Heads end up with different counts (ragged; note `ragged`).
///
/// Defaults: `α = 0.2`, `safeguard = authors`, SnapKV's defaults (window 32, kernel 7, max pooling,
/// the authors' settings; kvpress's own are window 64, kernel 5, avg pooling). Based on Ada-KV
/// (arXiv 2407.11550).
public struct AdaKV: DeclaredPolicy {
    /// Which reference's safeguard rule.
    public enum Safeguard: String, Sendable, Hashable, CaseIterable {
        case authors, kvpress
    }
    /// Default 0.2.
    public var alpha: Double
    public var safeguard: Safeguard
    /// The scorer whose scores are pooled (its scores must be on a common scale across heads).
    public var scorer: any ScoringPolicy

    /// With `safeguard = .authors` a SnapKV scorer combines the query heads before pooling (the
    /// authors' GQA order); with `.kvpress` after (kvpress's).
    public init(alpha: Double = 0.2, safeguard: Safeguard = .authors, scorer: any ScoringPolicy = SnapKV()) {
        self.alpha = alpha
        self.safeguard = safeguard
        if var snap = scorer as? SnapKV {
            snap.combineBeforePooling = safeguard == .authors
            self.scorer = snap
        } else {
            self.scorer = scorer
        }
    }
    public init(parameters p: ParameterValues) {
        self.init(alpha: p.real("alpha") ?? 0.2, safeguard: p.choice("safeguard"), scorer: SnapKV(parameters: p))
    }

    public static let declaration = PolicyDeclaration(
        id: "adakv", summary: "Ada-KV: head-adaptive budgets over SnapKV scores (ragged heads)", paper: "Ada-KV, arXiv 2407.11550",
        parameters: [
            .real("alpha", 0.2, in: 0 ... 1, "safeguard share α"),
            .choice("safeguard", Safeguard.authors, "authors (the Ada-KV code) | kvpress (AdaKVPress)"),
            ParameterSpec(
                "scorer", .choice(["snapkv"]), default: .choice("snapkv"),
                "scores pooled across heads (snapkv: window sums share one scale)"),
        ]
            + SnapKV.parameters,
        requirements: .windowRows, traits: [], color: 0x882255,
        rule: """
            A wrapper over a scorer (SnapKV): per layer the prefix slots go to the highest scores pooled across \
            the layer's KV heads, so heads that concentrate attention keep more. With B = C − w slots per head \
            and the safeguard share α (default 0.2): `safeguard=authors` (the Ada-KV authors' code) gives head h \
            the count c_h of the pooled top KVH·B, then keeps its own top round(c_h·(1−α) + ⌊α·B⌋), computed \
            as that code does in float32 and rounded half to even, so in code fidelity the total may miss KVH·B \
            by a few slots and C = P still compresses (intended gives c_h·(1−α) + α·B rounded by largest remainder \
            to exactly KVH·B); with \
            GQA it combines the query heads before pooling. `safeguard=kvpress` (kvpress's AdaKVPress, α a \
            share of C, window included) first keeps each head's own top max(0, ⌊α·C⌋ − w) and fills the rest \
            from the pooled top. The window is kept in every head. Ties go to the lower head, then the lower \
            position. Heads keep different counts.
            """)

    public func decide(_ context: LayerContext) throws -> LayerDecision {
        let ctx = context.named(id)
        let P = ctx.compressionPoint, C = ctx.budget.nominal
        // The authors' code compresses unless B > n, i.e. also at C = P.
        let authorsAtP = safeguard == .authors && ctx.options.fidelity == .code && C == P && scorer.keepCount(ctx, head: 0) > 0
        if !authorsAtP, let d = try scorer.shortcut(ctx) { return d }
        let prot = scorer.protected(ctx)
        let n = prot.lowerBound, G = ctx.kvHeads
        let B = max(0, min(n, scorer.keepCount(ctx, head: 0)))
        let s = try scorer.sharedScores(ctx)
        func own(_ g: Int, _ k: Int) -> [Int] { Selection.topK(Array(0 ..< n), k: min(n, max(0, k)), score: { s[g, $0] }) }
        /// The pooled top `k` of the positions not yet taken; flat index `g·n + j` orders ties by (head, position).
        func pooled(_ k: Int, excluding taken: [Bool]) -> [Int] {
            Selection.topK((0 ..< G * n).filter { !taken[$0] }, k: k, score: { s.values[($0 / n) * s.count + $0 % n] })
        }
        var chosen: [[Int]]
        switch safeguard {
        case .kvpress:
            let floor = max(0, Int(alpha * Double(C)) - (P - n))
            chosen = (0 ..< G).map { own($0, min(floor, B)) }
            var taken = [Bool](repeating: false, count: G * n)
            for g in 0 ..< G { for j in chosen[g] { taken[g * n + j] = true } }
            for f in pooled(G * B - chosen.reduce(0) { $0 + $1.count }, excluding: taken) { chosen[f / n].append(f % n) }
        case .authors:
            var counts = [Int](repeating: 0, count: G)
            for f in pooled(G * B, excluding: [Bool](repeating: false, count: G * n)) { counts[f / n] += 1 }
            let floor = Int(alpha * Double(B))
            let k =
                ctx.options.fidelity == .intended
                ? Self.largestRemainder(counts.map { Double($0) * (1 - alpha) + alpha * Double(B) }, total: G * B)
                : counts.map { Self.authorsCapacity(count: $0, alpha: alpha, floor: floor) }
            chosen = (0 ..< G).map { own($0, k[$0]) }
        }
        let heads = chosen.map { HeadDecision(kept: ($0 + Array(prot)).sorted(), prefill: P) }
        var d = LayerDecision(layer: ctx.layer, heads: heads, nominal: C, prefill: P, notes: gqaNotes(ctx))
        d.notes.append(DecisionNote("ragged", "per-head counts \(d.actual.map(String.init).joined(separator: ","))"))
        return d
    }

    /// The authors' per-head count `torch.round(c·(1−α) + ⌊α·B⌋)`: an int64 tensor times a Python
    /// float is a float32 tensor, so the product and the sum are float32, then rounded half to even.
    static func authorsCapacity(count c: Int, alpha: Double, floor: Int) -> Int {
        let x = Float(c) * Float(1 - alpha) + Float(floor)
        return Int(x.rounded(.toNearestOrEven))
    }

    /// Integers with the given total, each the floor of `raw[i]` or one more, the extra slots going to
    /// the largest fractional parts (ties → lower index).
    static func largestRemainder(_ raw: [Double], total: Int) -> [Int] {
        var k = raw.map { Int($0.rounded(.down)) }
        let extra = total - k.reduce(0, +)
        let order = raw.indices.sorted { (raw[$0] - Double(k[$0]), -$0) > (raw[$1] - Double(k[$1]), -$1) }
        if extra > 0 { for i in order.prefix(extra) { k[i] += 1 } }
        if extra < 0 { for i in order.reversed().prefix(-extra) where k[i] > 0 { k[i] -= 1 } }
        return k
    }
}
