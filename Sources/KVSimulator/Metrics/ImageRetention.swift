import KVTrace

/// `image_retention[i]`: for image `i`, the share of its tokens (before `P`) a head keeps, per
/// query head and averaged. Omitted with a note when the trace has no image spans.
/// Source: docs/metrics.md.
public struct ImageRetention: Metric {
    public static let describesCache = true
    public static let id = "image_retention"
    public init() {}
    public func series(_ info: TraceInfo, compressionPoint P: Int) -> [MetricSeries] {
        MetricSeries.perImage(Self.id, info, compressionPoint: P)
    }
    public func missing(_ layer: ReplayLayer, _ c: EvaluationContext) -> String? {
        c.info.images.contains { $0.positions.lowerBound < c.compressionPoint } ? nil : "the trace has no image spans before P"
    }
    public func evaluate(_ layer: ReplayLayer, _ c: EvaluationContext) throws -> [MetricValue] {
        var out: [MetricValue] = []
        for img in c.info.images where img.positions.lowerBound < c.compressionPoint {
            // the image's own tokens (its tiles' spans, when it has tiles) before P
            let spans = img.tokenRanges.map { $0.clamped(to: 0 ..< c.compressionPoint) }.filter { !$0.isEmpty }
            let count = spans.reduce(0) { $0 + $1.count }
            guard count > 0 else { continue }
            let keptPerKV = layer.decision.heads.map { head in head.kept.filter { j in spans.contains { $0.contains(j) } }.count }
            for h in 0 ..< c.queryHeads {
                out.append(MetricValue(Self.id, head: h, image: img.id, value: Double(keptPerKV[c.kvHeadOfQueryHead[h]]) / Double(count)))
            }
        }
        return out
    }
}
