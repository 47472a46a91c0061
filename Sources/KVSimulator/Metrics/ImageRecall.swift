import KVTrace

/// `image_recall[k]`: for image `k`, the share of the attention the evaluation rows give that
/// image's tokens (before `P`) which falls on tokens the compressed cache keeps:
/// `Σ_{j∈S_g(h), img(j)=k, j≤i} A[h,i,j] / Σ_{j<P, img(j)=k, j≤i} A[h,i,j]`, averaged over the rows
/// whose denominator is positive, then over query heads (and layers). Merged-away tokens count as
/// lost, as in `attention_recall`. One series per image before `P` (the `image` column); the
/// per-image split of `recall_image`. Omitted with a note when the trace has no image spans before
/// `P`, or when no evaluation row attends to the image.
public struct ImageRecall: Metric {
    public static let id = "image_recall"
    public init() {}
    public func series(_ info: TraceInfo, compressionPoint P: Int) -> [MetricSeries] {
        MetricSeries.perImage(Self.id, info, compressionPoint: P)
    }
    public func missing(_ layer: ReplayLayer, _ c: EvaluationContext) -> String? {
        if !c.imageOf.contains(where: { $0 != nil }) { return "the trace has no image spans before P" }
        return c.attentionNote
    }
    public func evaluate(_ layer: ReplayLayer, _ c: EvaluationContext) throws -> [MetricValue] {
        guard let a = c.attention else { return [] }
        let R = c.rowCount, T = c.seqLen
        let ids = Array(Set(c.imageOf.compactMap { $0 })).sorted()
        // Positions of each image before P, ascending.
        let positions = ids.map { k in c.imageOf.indices.filter { c.imageOf[$0] == k } }
        let masks = layer.decision.heads.map { head -> [Bool] in
            var m = [Bool](repeating: false, count: c.compressionPoint)
            for p in head.kept where p < c.compressionPoint { m[p] = true }
            return m
        }
        var out: [MetricValue] = []
        for (n, k) in ids.enumerated() {
            for h in 0 ..< c.queryHeads {
                let mask = masks[c.kvHeadOfQueryHead[h]]
                let v = RowMean.mean(R) { r in
                    let i = c.rows.lowerBound + r
                    let base = (h * R + r) * T
                    var num = 0.0, den = 0.0
                    for j in positions[n] where j <= i {
                        den += a[base + j]
                        if mask[j] { num += a[base + j] }
                    }
                    return den > 0 ? num / den : nil
                }
                out.append(
                    MetricValue(
                        Self.id, head: h, image: k, value: v,
                        note: v == nil ? "no attention on image \(k) in the evaluation rows" : nil))
            }
        }
        return out
    }
}
