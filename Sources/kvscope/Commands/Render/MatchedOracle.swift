import Foundation
import KVPolicies
import KVSimulator
import KVTrace

/// `render curves --match`: the oracle replayed at each policy's own kept counts.
///
/// For every setting of a sweep (trace × policy series × budget position), the policy is decided
/// again on each layer the sweep has rows for, and the oracle (top `C_act[l, g]` positions by the
/// evaluation rows' attention, ``Oracle``) keeps exactly as many positions in every (layer, KV
/// head) as the policy did. Its metric, averaged over layers with equal weights as the curves are,
/// is the upper bound at the policy's real budget: no eviction at those counts has a higher
/// attention recall on the same rows. The evaluation settings (proxy rows, top-k, compression
/// point) are the sweep's; policy options other than the fidelity take their defaults.
enum MatchedOracle {
    struct Key: Hashable { var trace: String; var series: String; var position: Double }

    /// The matched oracle's `metric` per (trace hash, series label, budget position), over the
    /// traces in `sources` (by content hash). References (`full`, `oracle`) get no matched line.
    static func values(
        metric: String, sweep: SweepResults, sources: [String: any TraceSource],
        proxyWindow: Int, topK: Int
    ) throws -> [Key: Double] {
        let metrics = try MetricCatalogue.select([MetricCatalogue.family(of: metric)])
        let labels = sweep.seriesLabels()
        // One representative row per setting, in file order.
        var settings: [(key: Key, row: ResultRow)] = []
        var seen = Set<Key>()
        for r in sweep.rows where sources[r.traceHash] != nil && !(["full", "oracle"].contains(r.base) && r.merge == "none") {
            guard let position = SweepResults.position(r), let label = labels[r] else { continue }
            let k = Key(trace: r.traceHash, series: label, position: position)
            if seen.insert(k).inserted { settings.append((k, r)) }
        }
        var perLayer: [Key: [Double]] = [:]
        let traces = Array(Set(settings.map(\.key.trace))).sorted()
        let work = traces.reduce(0) { n, h in n + Set(sweep.rows.filter { $0.traceHash == h }.compactMap(\.layer)).count }
        let bar = Progress(total: work, label: "oracle at matched counts")
        defer { bar.finish() }
        for hash in traces {
            let source = sources[hash]!
            let info = source.info
            let mine = settings.filter { $0.key.trace == hash }
            let layers = Set(sweep.rows.filter { $0.traceHash == hash }.compactMap(\.layer)).sorted()
            for l in layers where info.recordedLayers.contains(l) {
                let tensors = try source.layer(l)
                let cache = WorkCache()
                var byPoint: [Int: [PlannedRun]] = [:], keysByPoint: [Int: [Key]] = [:]
                for (k, r) in mine {
                    guard let spec = r.budgetSpecValue else { continue }
                    var options = KVPolicies.PolicyOptions(fidelity: Fidelity(rawValue: r.fidelity) ?? .code)
                    options.proxyRows = proxyWindow
                    let configuration = r.configuration
                    let ctx = LayerContext(
                        info: info, tensors: tensors, budget: spec, options: options,
                        compressionPoint: r.compressionPoint, trace: source, cache: cache)
                    // A policy that cannot decide on this layer has no matched point there.
                    guard let policy = try? configuration.make(), let d = try? policy.decide(ctx.named(policy.id)) else { continue }
                    let run = PlannedRun(
                        policy: Oracle(counts: d.actual), configuration: PolicyConfiguration("oracle"),
                        budget: spec, options: options)
                    byPoint[r.compressionPoint, default: []].append(run)
                    keysByPoint[r.compressionPoint, default: []].append(k)
                }
                for (P, group) in byPoint.sorted(by: { $0.key < $1.key }) {
                    let runs = group, keys = keysByPoint[P]!
                    let settings = EvaluationSettings(compressionPoint: P, proxyWindow: proxyWindow, topK: topK)
                    let rows = try LayerEngine.run(trace: source, layer: l, runs: runs, metrics: metrics, settings: settings)
                    // LayerEngine writes, per run in order, one row per series of each metric.
                    let perRun = rows.count / max(runs.count, 1)
                    guard perRun * runs.count == rows.count else { continue }
                    for (i, k) in keys.enumerated() {
                        let mine: ArraySlice<ResultRow> = rows[i * perRun ..< (i + 1) * perRun]
                        var vs: [Double] = []
                        for r in mine where r.metric == metric { if let v = r.value, v.isFinite { vs.append(v) } }
                        if !vs.isEmpty { perLayer[k, default: []].append(vs.reduce(0, +) / Double(vs.count)) }
                    }
                }
                bar.step()
            }
        }
        return perLayer.compactMapValues { $0.isEmpty ? nil : $0.reduce(0, +) / Double($0.count) }
    }
}
