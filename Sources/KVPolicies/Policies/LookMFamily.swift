/// The official merge classes of LOOK-M, each exactly a base selection plus a merge
/// (POLICIES.md §4.1): `lookm` is `text-prior` under pivotal merge, `pivot-merge` is
/// `h2o-sinks` under pivotal merge, and so on.
///
/// Based on LOOK-M (arXiv 2406.18139), official code `SUSTechBruce/LOOK-M`
/// (`LLaVA-mix_merge_v1/llava/model/kv_token_merge/modify_llama.py`).
public enum LookMFamily {
    /// `lookm` (`TextPivotMerge_LayerWise`, the paper's main method): text prior + pivotal merge.
    public static func lookm() -> Merging<TextPrior> { Merging(base: TextPrior(), strategy: .pivotal, id: "lookm") }
    /// `lookm-avg` (`TextAVGMergeKVCache_LayerWise`): text prior + averaged merge.
    public static func lookmAverage() -> Merging<TextPrior> { Merging(base: TextPrior(), strategy: .average, id: "lookm-avg") }
    /// `lookm-weighted` (`TextWeightedMerge_LayerWise`): text prior + weighted merge.
    public static func lookmWeighted() -> Merging<TextPrior> { Merging(base: TextPrior(), strategy: .weighted, id: "lookm-weighted") }
    /// `pivot-merge` (`PivotKVCache_LayerWise`): H2O with 4 sinks + pivotal merge.
    public static func pivotMerge() -> Merging<H2O> { Merging(base: H2OSinks(), strategy: .pivotal, id: "pivot-merge") }
    /// `avg-merge` (`AVGMergeKVCache_LayerWise`): H2O with 4 sinks + averaged merge.
    public static func averageMerge() -> Merging<H2O> { Merging(base: H2OSinks(), strategy: .average, id: "avg-merge") }
    /// `weighted-merge` (`WeightedMergeKVCache_LayerWise`): H2O with 4 sinks + weighted merge.
    public static func weightedMerge() -> Merging<H2O> { Merging(base: H2OSinks(), strategy: .weighted, id: "weighted-merge") }
}
