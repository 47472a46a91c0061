import Foundation
import KVTrace

/// `adakv`: Ada-KV head-adaptive budget allocation, a wrapper over a scorer (SnapKV by default).
///
/// Per layer, with the scorer's per-KV-head budget `B` (`C − w` for SnapKV), its protected
/// positions (the window, kept in every head) and the safeguard share `α`:
/// * `authors` (the Ada-KV authors' code): the `KVH·B` prefix slots go to the highest scores pooled
///   across the layer's KV heads (ties → lower head, then lower position), giving head `h` a count
///   `c_h`; head `h` then keeps its own top `round(c_h·(1−α) + ⌊α·B⌋)` (round half to even). In
///   `code` fidelity the rounded total may miss `KVH·B` by a few slots; `intended` repairs it by
///   largest remainder.
/// * `kvpress` (kvpress's `AdaKVPress`): `α` is a share of the whole kept count `C`, window
///   included, so each head first keeps its own top `max(0, ⌊α·C⌋ − w)`; the remaining slots go to
///   the pooled top scores.
/// At `α = 0` both are the plain pooled top-k. Heads end up with different counts (ragged).
///
/// Defaults: `α = 0.2`, `safeguard = authors`, SnapKV's defaults. Based on Ada-KV (arXiv 2407.11550).
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

    public init(alpha: Double = 0.2, safeguard: Safeguard = .authors, scorer: any ScoringPolicy = SnapKV()) {
        self.alpha = alpha
        self.safeguard = safeguard
        self.scorer = scorer
    }
    public init(parameters p: ParameterValues) {
        self.init(alpha: p.real("alpha") ?? 0.2, safeguard: p.choice("safeguard"), scorer: SnapKV(parameters: p))
    }

    public static let declaration = PolicyDeclaration(
        id: "adakv", summary: "Ada-KV: head-adaptive budgets over SnapKV scores (ragged heads)", paper: "Ada-KV, arXiv 2407.11550",
        parameters: [.real("alpha", 0.2, in: 0 ... 1, "safeguard share α"),
                     .choice("safeguard", Safeguard.authors, "authors (the Ada-KV code) | kvpress (AdaKVPress)"),
                     ParameterSpec("scorer", .choice(["snapkv"]), default: .choice("snapkv"), "scores pooled across heads (snapkv: window sums share one scale)")]
            + SnapKV.parameters,
        requirements: .windowRows, traits: [], color: 0x882255,
        rule: """
            A wrapper over a scorer (SnapKV): per layer the prefix slots go to the highest scores pooled across \
            the layer's KV heads, so heads that concentrate attention keep more. With B = C − w slots per head \
            and the safeguard share α (default 0.2): `safeguard=authors` (the Ada-KV authors' code) gives head h \
            the count c_h of the pooled top KVH·B, then keeps its own top round(c_h·(1−α) + ⌊α·B⌋) (round half \
            to even; in code fidelity the total may miss KVH·B by a few slots, intended repairs it by largest \
            remainder); `safeguard=kvpress` (kvpress's AdaKVPress) first keeps each head's own top \
            max(0, ⌊α·C⌋ − w) and fills the rest from the pooled top. The window is kept in every head. Ties go \
            to the lower head, then the lower position. Heads keep different counts; the mean is SnapKV's.
            """)

    public func decide(_ context: LayerContext) throws -> LayerDecision {
        let ctx = context.named(id)
        if let d = try scorer.shortcut(ctx) { return d }
        let P = ctx.compressionPoint, C = ctx.budget.nominal
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
            let floor = Double(Int(alpha * Double(B)))
            let raw = counts.map { Double($0) * (1 - alpha) + floor }
            var k = raw.map { Int($0.rounded(.toNearestOrEven)) }
            if ctx.options.fidelity == .intended { k = Self.largestRemainder(raw, total: G * B) }
            chosen = (0 ..< G).map { own($0, k[$0]) }
        }
        let heads = chosen.map { HeadDecision(kept: ($0 + Array(prot)).sorted(), prefill: P) }
        var d = LayerDecision(layer: ctx.layer, heads: heads, nominal: C, prefill: P, notes: gqaNotes(ctx))
        d.notes.append(DecisionNote("ragged", "per-head counts \(d.actual.map(String.init).joined(separator: ","))"))
        return d
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
