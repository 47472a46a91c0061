/// The official merge classes of LOOK-M, each exactly a base selection plus a merge:
/// `lookm` is `text-prior` under the pivotal merge, `pivot-merge` is `h2o-sinks` under the
/// pivotal merge, and so on. Each is declared once here; `ComposedPolicy` builds it.
///
/// Based on LOOK-M (arXiv 2406.18139), official code `SUSTechBruce/LOOK-M`
/// (`LLaVA-mix_merge_v1/llava/model/kv_token_merge/modify_llama.py`).
public protocol ComposedPolicy: DeclaredPolicy, MergeSettable {
    associatedtype Base: DeclaredPolicy
    /// The base selection.
    static var base: Base { get }
    init()
}

extension ComposedPolicy {
    public init(parameters: ParameterValues) { self.init() }
    var merged: Merging<Base> {
        Merging(
            base: Self.base, strategy: Self.declaration.composition!.merge, filter: mergeFilter, scope: mergeScope, id: Self.declaration.id)
    }
    public var requirements: Requirements { merged.requirements }
    public func decide(_ context: LayerContext) throws -> LayerDecision { try merged.decide(context) }
    public func plannedMerge(_ context: LayerContext) -> [[Int]]? { merged.plannedMerge(context) }

    /// The declaration of `Base` under `merge`: its requirements plus keys and values, its traits
    /// plus `merges`, its colour (figures tell the merge by dash and marker).
    static func declare(_ id: String, _ summary: String, mode: String, merge: MergeStrategy) -> PolicyDeclaration {
        let b = Base.declaration, base = b.id
        return PolicyDeclaration(
            id: id, summary: summary, paper: "LOOK-M, arXiv 2406.18139", officialMode: mode,
            requirements: b.requirements.union([.keys, .values]), traits: b.traits.union(.merges),
            composition: .init(base: base, merge: merge), color: b.color,
            rule: "`\(base)` selects what each KV head keeps; then the \(merge.rawValue) merge folds every evicted token into its "
                + "nearest kept token (see `--merge`; `--merge-scope` keeps it within a modality or an image): exactly `kvscope … --policy \(base) --merge \(merge.rawValue)`, official kv_mode \(mode)."
        )
    }
}

/// `lookm` (`TextPivotMerge_LayerWise`, the paper's main method): text prior + pivotal merge.
public struct LookM: ComposedPolicy {
    public var mergeFilter: MergeFilter?
    public var mergeScope: MergeScope?
    public init() {}
    public static var base: TextPrior { TextPrior() }
    public static let declaration = declare(
        "lookm", "LOOK-M: text-prior eviction + pivotal merge (the paper's main method)",
        mode: "text_prior_pivot_merge", merge: .pivotal)
}

/// `lookm-avg` (`TextAVGMergeKVCache_LayerWise`): text prior + averaged merge.
public struct LookMAverage: ComposedPolicy {
    public var mergeFilter: MergeFilter?
    public var mergeScope: MergeScope?
    public init() {}
    public static var base: TextPrior { TextPrior() }
    public static let declaration = declare(
        "lookm-avg", "text prior + averaged merge (head-shared filter, rank-mismatched sources in code mode)",
        mode: "text_prior_avg_merge", merge: .average)
}

/// `lookm-weighted` (`TextWeightedMerge_LayerWise`): text prior + weighted merge.
public struct LookMWeighted: ComposedPolicy {
    public var mergeFilter: MergeFilter?
    public var mergeScope: MergeScope?
    public init() {}
    public static var base: TextPrior { TextPrior() }
    public static let declaration = declare(
        "lookm-weighted", "text prior + cosine-weighted merge (filtered, unnormalised)",
        mode: "text_prior_weighted_merge", merge: .weighted)
}

/// `pivot-merge` (`PivotKVCache_LayerWise`): H2O with 4 sinks + pivotal merge.
public struct PivotMerge: ComposedPolicy {
    public var mergeFilter: MergeFilter?
    public var mergeScope: MergeScope?
    public init() {}
    public static var base: H2OSinks { H2OSinks() }
    public static let declaration = declare("pivot-merge", "H2O with 4 sinks + pivotal merge", mode: "pivot_merge", merge: .pivotal)
}

/// `avg-merge` (`AVGMergeKVCache_LayerWise`): H2O with 4 sinks + averaged merge.
public struct AverageMerge: ComposedPolicy {
    public var mergeFilter: MergeFilter?
    public var mergeScope: MergeScope?
    public init() {}
    public static var base: H2OSinks { H2OSinks() }
    public static let declaration = declare("avg-merge", "H2O with 4 sinks + averaged merge", mode: "avg_merge", merge: .average)
}

/// `weighted-merge` (`WeightedMergeKVCache_LayerWise`): H2O with 4 sinks + weighted merge.
public struct WeightedMerge: ComposedPolicy {
    public var mergeFilter: MergeFilter?
    public var mergeScope: MergeScope?
    public init() {}
    public static var base: H2OSinks { H2OSinks() }
    public static let declaration = declare("weighted-merge", "H2O with 4 sinks + weighted merge", mode: "weighted_merge", merge: .weighted)
}
