import KVTrace

/// `retention_<modality>`: the share of the prefix tokens of modality `m` (positions `< P`) that a
/// head keeps, `|S_g(h) ∩ {j < P: mod(j) = m}| / |{j < P: mod(j) = m}|`. The per-modality
/// breakdown of `kept_ratio`; needs only the decision and the token modalities.
public struct ModalityRetention: Metric {
    public static let describesCache = true
    public static let id = "retention_<modality>"
    public init() {}
    public func series(_ info: TraceInfo, compressionPoint P: Int) -> [MetricSeries] {
        let present = Set((0 ..< P).map { $0 < info.modality.count ? info.modality[$0] : .text })
        return Modality.allCases.filter(present.contains).map { MetricSeries("retention_\($0)") }
    }
    public func evaluate(_ layer: ReplayLayer, _ c: EvaluationContext) throws -> [MetricValue] {
        var out: [MetricValue] = []
        for m in c.modalities {
            let total = c.modality.filter { $0 == m }.count
            let keptPerKV = layer.decision.heads.map { head in head.kept.filter { $0 < c.compressionPoint && c.modality[$0] == m }.count }
            for h in 0 ..< c.queryHeads {
                out.append(MetricValue("retention_\(m)", head: h, value: Double(keptPerKV[c.kvHeadOfQueryHead[h]]) / Double(total)))
            }
        }
        return out
    }
}
