import KVTrace

/// `recall_<modality>`: `Σ_{j∈S, mod(j)=m} A[h,i,j] / Σ_{j<P, mod(j)=m} A[h,i,j]` for each
/// modality `m` present before `P`; undefined (omitted) on rows whose denominator is 0.
/// Source: docs/metrics.md.
public struct ModalityRecall: Metric {
    public static let id = "recall_<modality>"
    public init() {}
    public func series(_ info: TraceInfo, compressionPoint P: Int) -> [MetricSeries] {
        let present = Set((0 ..< P).map { $0 < info.modality.count ? info.modality[$0] : .text })
        return Modality.allCases.filter(present.contains).map { MetricSeries("recall_\($0)") }
    }
    public func missing(_ layer: ReplayLayer, _ c: EvaluationContext) -> String? { c.attentionNote }
    public func evaluate(_ layer: ReplayLayer, _ c: EvaluationContext) throws -> [MetricValue] {
        let R = c.rowCount
        var out: [MetricValue] = []
        for (mi, m) in c.modalities.enumerated() {
            for h in 0 ..< c.queryHeads {
                let v = RowMean.mean(R) { r in
                    let den = c.modalityMass[mi][h * R + r]
                    return den > 0 ? layer.keptModalityMass[h][mi][r] / den : nil
                }
                out.append(
                    MetricValue(
                        "recall_\(m)", head: h, value: v,
                        note: v == nil ? "no attention on \(m) tokens in the evaluation rows" : nil))
            }
        }
        return out
    }
}
