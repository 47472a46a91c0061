/// How a metric reads on a figure: an axis label in words with its unit, the question a curve
/// of it answers, its full-cache value, and whether it is a fraction (axis 0–1).
struct MetricLabel {
    var axis: String
    var question: String
    /// The value with the whole cache (recall 1, error 0), when the metric has a fixed one.
    var reference: Double?
    var isFraction: Bool

    /// The label of metric id `id`; unknown ids read as themselves.
    static func of(_ id: String) -> MetricLabel {
        switch id {
        case "attention_recall":
            return MetricLabel(
                axis: "attention recall (share of attention mass kept, 0–1)",
                question: "how much attention mass survives as the budget shrinks?", reference: 1, isFraction: true)
        case "topk_recall":
            return MetricLabel(
                axis: "top-k recall (share of each row's top-k keys kept, 0–1)",
                question: "how many of the most-attended keys survive?", reference: 1, isFraction: true)
        case "output_error":
            return MetricLabel(
                axis: "output error (relative L2, ‖o − ô‖ / ‖o‖)",
                question: "how far does the attention output move from the full cache?", reference: 0, isFraction: false)
        case "output_error_evict":
            return MetricLabel(
                axis: "output error without merging (relative L2)",
                question: "how far does the output move when evicted tokens are simply dropped?", reference: 0, isFraction: false)
        case "output_cosine":
            return MetricLabel(
                axis: "output cosine similarity to the full cache (−1…1)",
                question: "how closely does the attention output point the full cache's way?", reference: 1, isFraction: false)
        case "kept_ratio":
            return MetricLabel(
                axis: "kept ratio (mean C_act / P)", question: "how much of the prefill does each policy really keep?",
                reference: 1, isFraction: true)
        case "kept_tokens":
            return MetricLabel(
                axis: "kept tokens (mean C_act, tokens)", question: "how many positions does each policy keep?",
                reference: nil, isFraction: false)
        case "image_retention":
            return MetricLabel(
                axis: "image tokens kept (share of each image's positions, 0–1)",
                question: "how much of each image stays in the cache?", reference: 1, isFraction: true)
        case "cache_bytes":
            return MetricLabel(
                axis: "cache size (bytes)", question: "how large is the compressed cache?", reference: nil, isFraction: false)
        default:
            for (prefix, what, q) in [
                ("recall_", "attention recall on", "how much attention on"),
                ("retention_", "share of", "how much of the"),
            ] where id.hasPrefix(prefix) {
                let m = String(id.dropFirst(prefix.count))
                if prefix == "recall_" {
                    return MetricLabel(
                        axis: "\(what) \(m) tokens (share of its attention mass kept, 0–1)",
                        question: "\(q) \(m) tokens survives?", reference: 1, isFraction: true)
                }
                return MetricLabel(
                    axis: "\(what) \(m) positions kept (0–1)", question: "\(q) \(m) stays in the cache?",
                    reference: 1, isFraction: true)
            }
            return MetricLabel(
                axis: id.replacingOccurrences(of: "_", with: " "), question: "\(id) versus budget",
                reference: nil, isFraction: false)
        }
    }
}
