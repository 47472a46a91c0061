// The user-facing definition of every metric, in one place: `kvscope report` prints these next to
// its tables, so a report stands on its own. Notation: `P` is the compression point, `S_g` the
// slots KV head `g` keeps, `A[h,i,j]` the recorded attention of query head `h`, row `i`, on key `j`.

extension KeptTokens {
    public static let definition = """
        The number of prefix positions (before P) a KV head actually keeps, |S_g|; a merged slot counts once. \
        This is the real count, which can exceed the nominal budget C (text-prior keeps every text token).
        """
}

extension KeptRatio {
    public static let definition = "kept_tokens / P: the share of the prefix that stays in the cache (1 for the full cache)."
    public static var fullCacheValue: Double? { 1 }
}

extension CacheBytes {
    public static let definition = """
        Size of the compressed prefix cache: the sum over layers and KV heads of kept_tokens × head_dim × 2 (keys and \
        values) × bytes per element (the trace's K/V element size, else 2). The all-layers value is the sum over layers.
        """
}

extension AttentionRecall {
    public static let definition = """
        For evaluation row i of query head h, R = Σ_{j ∈ S_g(h) ∪ [P, i]} A[h,i,j] / Σ_{j ≤ i} A[h,i,j]: the share of \
        the row's recorded attention that lands on positions still in the cache. Generated positions (≥ P) always \
        count; tokens merged into another slot count as lost. 1 for the full cache.
        """
    public static var preference: MetricPreference { .higher }
    public static var fullCacheValue: Double? { 1 }
}

extension ModalityRecall {
    public static let definition = """
        attention_recall restricted to the prefix tokens of one modality m (recall_text, recall_image, …): \
        Σ_{j ∈ S, mod(j) = m} A[h,i,j] / Σ_{j < P, mod(j) = m} A[h,i,j]. Rows whose denominator is 0 are left out; \
        the value is omitted when no row defines it. 1 for the full cache.
        """
    public static var preference: MetricPreference { .higher }
    public static var fullCacheValue: Double? { 1 }
}

extension ModalityRetention {
    public static let definition = """
        The share of the prefix tokens of modality m (retention_text, retention_image, …) a head keeps: \
        |S_g(h) ∩ {j < P : mod(j) = m}| / |{j < P : mod(j) = m}|. The per-modality split of kept_ratio.
        """
    public static var fullCacheValue: Double? { 1 }
}

extension TopKRecall {
    public static let definition = """
        |top_k(A[h,i,0..<P]) ∩ S_g(h)| / k: the share of the row's k most-attended prefix positions that are kept \
        (k = 16 unless --topk says otherwise, capped at P; ties go to the lower position). 1 for the full cache.
        """
    public static var preference: MetricPreference { .higher }
    public static var fullCacheValue: Double? { 1 }
}

extension OutputError {
    public static let definition = """
        Relative L2 error of the attention output, ‖o − o′‖ / ‖o‖, where o = Σ_{j ≤ i} softmax_j(s · q_i · k_j) v_j \
        over the full cache and o′ is the same over the compressed cache (the kept or merged K′, V′ in S, plus \
        positions P … i); s is the trace's attn_scale, else 1/√head_dim. Needs q, k and v. 0 for the full cache.
        """
    public static var preference: MetricPreference { .lower }
    public static var fullCacheValue: Double? { 0 }
}

extension OutputCosine {
    public static let definition = "Cosine similarity of the outputs o and o′ defined under output_error. 1 for the full cache."
    public static var preference: MetricPreference { .higher }
    public static var fullCacheValue: Double? { 1 }
}

extension OutputErrorEvict {
    public static let definition = """
        An estimate of output_error that needs no queries: o′ = Σ_{j ∈ S ∪ [P, i]} A[h,i,j] v_j / Σ_{same j} A[h,i,j] \
        against o = Σ_{j ≤ i} A[h,i,j] v_j / Σ_{j ≤ i} A[h,i,j], compared by ‖o − o′‖ / ‖o‖. Exact for policies that \
        only evict; omitted for merging ones, whose merged values it cannot see. 0 for the full cache.
        """
    public static var preference: MetricPreference { .lower }
    public static var fullCacheValue: Double? { 0 }
}

extension ImageRetention {
    public static let definition = """
        For image i (image_retention[i]): the share of its tokens before P that a head keeps, per query head, then \
        averaged. Omitted when the trace has no image spans before P.
        """
    public static var fullCacheValue: Double? { 1 }
}

extension MetricCatalogue {
    /// How every metric is averaged and on which rows, stated once for all of them.
    public static let averaging = """
        Every metric is computed per layer and per query head (query head h reads KV head g(h)), averaged over the \
        evaluation rows, then over heads, then over layers with equal weights (cache_bytes sums over layers). The \
        evaluation rows are the recorded query rows at or after P (true future queries) when the trace has them; \
        otherwise the last W prefill rows (W = 32 unless --proxy-rows), which also fed the policies' scores, and the \
        results say eval_rows = proxy. A metric whose inputs the trace lacks is omitted with a note, never guessed.
        """

    /// The family id of a concrete series id: `recall_text` → `recall_<modality>`,
    /// `retention_image` → `retention_<modality>`; other ids are their own family.
    public static func family(of id: String) -> String {
        if id.hasPrefix("recall_") && id != "recall_<modality>" { return "recall_<modality>" }
        if id.hasPrefix("retention_") && id != "retention_<modality>" { return "retention_<modality>" }
        return id
    }

    /// The metric type that produces the series `id` (a concrete id such as `recall_image`), or nil.
    public static func metricType(of id: String) -> (any Metric.Type)? {
        let f = family(of: id)
        return all.lazy.map { type(of: $0) }.first { $0.id == f }
    }
}

extension ImageRecall {
    public static let definition = """
        For image k: Σ_{j ∈ S_g(h), img(j) = k} A[h,i,j] / Σ_{j < P, img(j) = k} A[h,i,j], the share of the attention \
        the evaluation rows give image k that lands on tokens the cache keeps (merged-away tokens count as lost), \
        averaged over rows with a positive denominator, then over heads and layers. 1 for the full cache.
        """
    public static var preference: MetricPreference { .higher }
    public static var fullCacheValue: Double? { 1 }
}

extension MergeFlow {
    public static let definition = """
        Where evicted tokens' K/V went, for merging policies: one row per source group a and target b (text, image 0, \
        image 1, …, and target dropped; the source and target columns). merge_flow[a → b] counts the tokens of group a \
        a KV head evicted whose K/V was merged into a kept token of group b (dropped: merged nowhere); \
        merge_flow_attention[a → b] = Σ_{e of those, e ≤ i} A[h,i,e] / Σ_{j ≤ i} A[h,i,j], the share of the evaluation \
        row's attention those tokens received. Per head, then averaged over heads and layers. attention_recall plus \
        the sum of merge_flow_attention over all pairs is 1.
        """
}
