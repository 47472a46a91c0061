import KVTrace

/// `keydiff`: KeyDiff, eviction by key diversity.
///
/// Per KV head `g`, the anchor is the mean of the unit-normalised keys of the prefill,
/// `a_g = (1/P) Σ_{j<P} K[g, j] / ‖K[g, j]‖₂`, and each position scores
/// `s[g, j] = −cos(K[g, j], a_g)`: keep the `C` keys least similar to the anchor, ascending
/// (ties → lowest position). Needs only `k`; no attention, so it works with flash attention.
/// A zero key (or a zero anchor) has cosine 0. Does not use `--recent-share`, as kvpress's
/// `KeyDiffPress` protects no window.
///
/// Based on KeyDiff (arXiv 2504.15364), as kvpress's `KeyDiffPress` scores it.
public struct KeyDiff: ScoringPolicy, DeclaredPolicy {
    public init() {}
    public init(parameters: ParameterValues) {}

    public static let declaration = PolicyDeclaration(
        id: "keydiff", summary: "KeyDiff: keep the C keys least cosine-similar to the head's mean unit key",
        paper: "KeyDiff, arXiv 2504.15364 (as kvpress's KeyDiffPress)", requirements: .keys, traits: [.keepsExactlyC], color: 0x117733,
        rule: """
            Per KV head g the anchor is the mean of the unit-normalised prefill keys, a = (1/P) Σ_{j<P} K[g, j] / \
            ‖K[g, j]‖, and position j scores −cos(K[g, j], a): keep the C keys least similar to the anchor (the \
            most distinctive ones), ascending; ties to the lowest position. Needs only k. A zero key or anchor \
            has cosine 0. No recent window is protected, as in kvpress's KeyDiffPress.
            """)

    public var scoreKey: AnyHashable { "keydiff" }

    public func scores(_ ctx: LayerContext) throws -> ScoreMatrix {
        let k = try ctx.keys()
        let G = k.heads, P = k.count, D = k.dim
        var out = ScoreMatrix(rows: G, count: P)
        k.values.withUnsafeBufferPointer { kb in
            var unit = [Double](repeating: 0, count: D)
            for g in 0 ..< G {
                var anchor = [Double](repeating: 0, count: D)
                var norms = [Double](repeating: 0, count: P)
                for j in 0 ..< P {
                    let p = kb.baseAddress! + k.offset(g, j)
                    let n = dot(p, p, D).squareRoot()
                    norms[j] = n
                    if n > 0 { for d in 0 ..< D { anchor[d] += p[d] / n } }
                }
                for d in 0 ..< D { anchor[d] /= Double(P) }
                let an = anchor.withUnsafeBufferPointer { dot($0.baseAddress!, $0.baseAddress!, D).squareRoot() }
                for j in 0 ..< P {
                    let p = kb.baseAddress! + k.offset(g, j)
                    guard norms[j] > 0, an > 0 else { out[g, j] = 0; continue }
                    for d in 0 ..< D { unit[d] = p[d] }
                    let c = unit.withUnsafeBufferPointer { u in anchor.withUnsafeBufferPointer { dot(u.baseAddress!, $0.baseAddress!, D) } }
                    out[g, j] = -c / (norms[j] * an)
                }
            }
        }
        return out
    }

    public func protected(_ ctx: LayerContext) -> Range<Int> { ctx.compressionPoint ..< ctx.compressionPoint }
    public func keepCount(_ ctx: LayerContext, head g: Int) -> Int { ctx.budget.nominal }
    public func notes(_ ctx: LayerContext, _ d: LayerDecision) -> [DecisionNote] { [] }
}
