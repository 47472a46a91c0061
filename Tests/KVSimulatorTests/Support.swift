import Foundation
import KVPolicies
import KVTrace
@_exported import KVTestSupport
@testable import KVSimulator

/// `../shared` beside the project.
let sharedDir: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared")
let sharedExists = FileManager.default.fileExists(atPath: sharedDir.appendingPathComponent("traces/smollm2-chat-full/trace.json").path)

/// Evaluates `metrics` for one hand-made decision on layer 0.
func evaluate(
    _ trace: TestTrace, decision: LayerDecision, merges: Bool = false, settings: EvaluationSettings = .init(topK: 2),
    metrics: [any Metric] = MetricCatalogue.all
) throws -> (ReplayLayer, EvaluationContext, [String: MetricValue]) {
    let ctx = LayerContext(info: trace.info, tensors: try trace.layer(0), budget: .fraction(1), compressionPoint: settings.compressionPoint)
    let ec = EvaluationContext(ctx, settings: settings)
    let rl = ReplayLayer(decision, merges: merges, context: ec)
    var out: [String: MetricValue] = [:]
    for m in metrics {
        if let why = m.missing(rl, ec) {
            for s in m.series(trace.info, compressionPoint: ec.compressionPoint) {
                out[s.metric] = MetricValue(s.metric, value: nil, note: why)
            }
            continue
        }
        for v in try m.evaluate(rl, ec) { out[v.image.map { "\(v.metric)[\($0)]" } ?? v.metric] = v }
    }
    return (rl, ec, out)
}
