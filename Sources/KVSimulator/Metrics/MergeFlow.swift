import KVPolicies
import KVTrace

/// `merge_flow`: where the K/V of evicted tokens went, as a matrix over token groups
/// (`TokenGroup`: text, image 0, image 1, …; a non-text token outside every span by its
/// modality). For KV head `g`, source group `a` and target `b` (a group, or `dropped`):
///
/// * `merge_flow[a → b] = |{e ∈ E_g : grp(e) = a, grp(κ_g(e)) = b}|`, the number of evicted tokens
///   of group `a` whose K/V was added to a kept slot of group `b` (`κ_g(e)`: the position of the
///   slot `e` merged into, `HeadDecision.mergeTarget`); `b = dropped` counts those merged nowhere.
/// * `merge_flow_attention[a → b] = Σ_{e in that set, e ≤ i} A[h,i,e] / Σ_{j ≤ i} A[h,i,j]` per
///   evaluation row `i` of query head `h`, averaged over rows with a positive denominator: the
///   share of the row's attention that such tokens received.
///
/// Per query head (its KV head's counts), averaged over heads, then over layers. Every pair of a
/// group present before `P` and a group or `dropped` is a series (zeros included), with the
/// `source` and `target` columns; only merging policies have it. Identities: per head, the counts
/// of a source sum to its evicted tokens, and `attention_recall + Σ_{a,b} merge_flow_attention = 1`.
public struct MergeFlow: Metric {
    public static let id = "merge_flow"
    /// The attention-weighted series.
    public static let attentionID = "merge_flow_attention"
    /// The target of evicted tokens merged nowhere.
    public static let dropped = "dropped"
    public init() {}

    /// The groups present before `P`, in order.
    public static func groups(_ info: TraceInfo, compressionPoint P: Int) -> [TokenGroup] {
        Array(Set(TokenGroup.of(info, count: P))).sorted()
    }

    public func series(_ info: TraceInfo, compressionPoint P: Int) -> [MetricSeries] {
        let g = Self.groups(info, compressionPoint: P).map(\.description)
        return [Self.id, Self.attentionID].flatMap { m in
            g.flatMap { s in (g + [Self.dropped]).map { t in MetricSeries(m, source: s, target: t) } }
        }
    }

    public func series(_ info: TraceInfo, compressionPoint P: Int, merges: Bool) -> [MetricSeries] {
        merges ? series(info, compressionPoint: P) : []
    }

    public func evaluate(_ layer: ReplayLayer, _ c: EvaluationContext) throws -> [MetricValue] {
        let P = c.compressionPoint, R = c.rowCount, T = c.seqLen
        let groupOf = TokenGroup.of(c.info, count: P)
        let order = Self.groups(c.info, compressionPoint: P)
        let index = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        let S = order.count, N = S + 1
        let labels = order.map(\.description) + [Self.dropped]
        // Per KV head: each evicted position (< P) with its cell `source·N + target`.
        let cells = layer.decision.heads.map { head -> [(position: Int, cell: Int)] in
            zip(head.evicted, head.mergeTarget).compactMap { p, slot in
                guard p < P else { return nil }
                let t = slot >= 0 && head.kept[slot] < P ? index[groupOf[head.kept[slot]]]! : S
                return (p, index[groupOf[p]]! * N + t)
            }
        }
        var out: [MetricValue] = []
        for h in 0 ..< c.queryHeads {
            let mine = cells[c.kvHeadOfQueryHead[h]]
            var count = [Int](repeating: 0, count: S * N)
            for x in mine { count[x.cell] += 1 }
            var share: [Double?] = Array(repeating: nil, count: S * N)
            if let a = c.attention {
                var sum = [Double](repeating: 0, count: S * N), acc = sum
                var rows = 0
                for r in 0 ..< R {
                    let total = c.prefixMass[h * R + r] + c.tailMass[h * R + r]
                    guard total > 0 else { continue }
                    let i = c.rows.lowerBound + r, row = (h * R + r) * T
                    for k in acc.indices { acc[k] = 0 }
                    for x in mine where x.position <= i { acc[x.cell] += a[row + x.position] }
                    for k in acc.indices { sum[k] += acc[k] / total }
                    rows += 1
                }
                if rows > 0 { share = sum.map { $0 / Double(rows) } }
            }
            for s in 0 ..< S {
                for t in 0 ..< N {
                    let k = s * N + t
                    out.append(MetricValue(Self.id, head: h, source: labels[s], target: labels[t], value: Double(count[k])))
                    out.append(
                        MetricValue(
                            Self.attentionID, head: h, source: labels[s], target: labels[t], value: share[k],
                            note: share[k] == nil ? (c.attentionNote ?? "no evaluation row attends to the prefix") : nil))
                }
            }
        }
        return out
    }
}

/// The order of flow rows: text, images by id, other groups by name, then `dropped`.
enum FlowOrder {
    static func rank(_ label: String?) -> (Int, Int, String) {
        guard let label else { return (-1, 0, "") }
        if label == "text" { return (0, 0, "") }
        if label == MergeFlow.dropped { return (3, 0, "") }
        if label.hasPrefix("image "), let k = Int(label.dropFirst(6)) { return (1, k, "") }
        return (2, 0, label)
    }

    static func precedes(_ a: String?, _ b: String?) -> Bool { rank(a) < rank(b) }
}
