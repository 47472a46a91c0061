import KVPolicies
import KVTrace

/// How a metric's per-layer values combine into the `layer = all` value.
public enum Aggregation: String, Sendable, Codable {
    /// Uniform mean over layers (docs/metrics.md: rows, then heads, then layers).
    case mean
    /// Sum over layers (`cache_bytes`).
    case sum
}

/// One series a metric produces on a trace: a concrete metric id, and an image for per-image ones.
public struct MetricSeries: Sendable, Hashable {
    public var metric: String
    public var image: Int?
    /// The source and target groups of a flow series (`merge_flow`), else nil.
    public var source: String?
    public var target: String?
    public init(_ metric: String, image: Int? = nil, source: String? = nil, target: String? = nil) {
        self.metric = metric
        self.image = image
        self.source = source
        self.target = target
    }

    /// True when `v` is a value of this series.
    func matches(_ v: MetricValue) -> Bool { v.metric == metric && v.image == image && v.source == source && v.target == target }

    /// One series per image that starts before `P` (the `image` column), or one without an image
    /// when there is none (its value is then omitted with a note).
    public static func perImage(_ metric: String, _ info: TraceInfo, compressionPoint P: Int) -> [MetricSeries] {
        let imgs = info.images.filter { $0.positions.lowerBound < P }
        return imgs.isEmpty ? [MetricSeries(metric)] : imgs.map { MetricSeries(metric, image: $0.id) }
    }
}

/// Which way a metric improves, for marking the best value in a table.
public enum MetricPreference: String, Sendable, Codable {
    /// Larger is better (recalls, cosine).
    case higher
    /// Smaller is better (errors).
    case lower
    /// A size, not a score (kept tokens, bytes): no best value.
    case neither
}

/// A measurement of a replayed layer (docs/metrics.md). Metrics return per-query-head values
/// (`head: h`), which the engine averages over heads, or a single layer value (`head: nil`).
public protocol Metric: Sendable {
    /// The id of docs/metrics.md (a family id such as `recall_<modality>` for expanded metrics).
    static var id: String { get }
    /// What the metric measures, with its formula, for readers of results (the study report
    /// prints it next to every table). Plain text; one paragraph. See `MetricDefinitions.swift`.
    static var definition: String { get }
    /// Which way is better (default `.neither`).
    static var preference: MetricPreference { get }
    /// The value the full cache scores by definition (recall 1, error 0), or nil when it depends
    /// on the trace (sizes). Default nil.
    static var fullCacheValue: Double? { get }
    /// True for the metrics of the decision alone (sizes, retention), which read no evaluation row.
    /// A decoding replay reports them for the cache at step `t`, where the row metrics are a mean
    /// over the rows up to `t` (docs/metrics.md#replay-through-decoding). Default false.
    static var describesCache: Bool { get }
    /// How layers combine (default: mean).
    var aggregation: Aggregation { get }
    /// The concrete series this metric produces on a trace at compression point `P`.
    func series(_ info: TraceInfo, compressionPoint: Int) -> [MetricSeries]
    /// The series for a policy that merges or not (default: `series(_:compressionPoint:)` either
    /// way; `merge_flow` has none for eviction-only policies).
    func series(_ info: TraceInfo, compressionPoint: Int, merges: Bool) -> [MetricSeries]
    /// Why the metric cannot be computed on this layer (missing inputs), or nil.
    func missing(_ layer: ReplayLayer, _ context: EvaluationContext) -> String?
    /// The values of one layer.
    func evaluate(_ layer: ReplayLayer, _ context: EvaluationContext) throws -> [MetricValue]
}

extension Metric {
    public static var preference: MetricPreference { .neither }
    public static var fullCacheValue: Double? { nil }
    public static var describesCache: Bool { false }
    public var aggregation: Aggregation { .mean }
    public var id: String { Self.id }
    public func series(_ info: TraceInfo, compressionPoint: Int) -> [MetricSeries] { [MetricSeries(Self.id)] }
    public func series(_ info: TraceInfo, compressionPoint: Int, merges: Bool) -> [MetricSeries] {
        series(info, compressionPoint: compressionPoint)
    }
    public func missing(_ layer: ReplayLayer, _ context: EvaluationContext) -> String? { nil }
}

/// Per-head helpers shared by the row metrics.
enum RowMean {
    /// Mean over the rows where `f(r)` is defined, or nil when none is.
    static func mean(_ R: Int, _ f: (Int) -> Double?) -> Double? {
        var s = 0.0, n = 0
        for r in 0 ..< R { if let v = f(r) { s += v; n += 1 } }
        return n > 0 ? s / Double(n) : nil
    }

    /// Per query head, the row mean of `‖o − o'‖ / ‖o‖`, with `full` laid out `[H, R, D]` and
    /// `approx[h]` laid out `[R, D]`; rows with `‖o‖ = 0` are left out.
    static func relativeL2(id: String, full: [Double], approx: [[Double]], heads: Int, rows R: Int, dim D: Int) -> [MetricValue] {
        (0 ..< heads).map { h in
            MetricValue(
                id, head: h,
                value: mean(R) { r in
                    var num = 0.0, den = 0.0
                    for d in 0 ..< D {
                        let o = full[(h * R + r) * D + d], e = o - approx[h][r * D + d]
                        num += e * e
                        den += o * o
                    }
                    return den > 0 ? (num / den).squareRoot() : nil
                })
        }
    }
}

/// The metrics of docs/metrics.md, in the order results list them.
public enum MetricCatalogue {
    public static let all: [any Metric] = [
        KeptTokens(), KeptRatio(), CacheBytes(), AttentionRecall(), ModalityRecall(), ImageRecall(), TopKRecall(),
        OutputError(), OutputCosine(), OutputErrorEvict(), ModalityRetention(), ImageRetention(), MergeFlow(),
    ]

    /// Every family id, in order.
    public static var ids: [String] { all.map { type(of: $0).id } }

    /// The metrics named in `ids` (family ids; `recall_text` also selects `recall_<modality>`).
    public static func select(_ ids: [String]) throws -> [any Metric] {
        var out: [any Metric] = []
        for id in ids {
            let family = family(of: id)
            guard let m = all.first(where: { type(of: $0).id == family }) else {
                throw SimulatorError("unknown metric '\(id)' (known: \(Self.ids.joined(separator: ", ")))")
            }
            if !out.contains(where: { type(of: $0).id == family }) { out.append(m) }
        }
        return out
    }
}

/// A simulator failure with a one-line message.
public struct SimulatorError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ message: String) { description = message }
}
