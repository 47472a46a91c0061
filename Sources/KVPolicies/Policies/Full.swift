/// `full`: keeps `0 ..< P`. The reference of every metric (official `origin`, and in effect
/// `mean_h2o`). Needs nothing.
public struct FullCache: CachePolicy {
    public init() {}
    public var id: String { "full" }
    public var requirements: Requirements { [] }
    public func decide(_ context: LayerContext) throws -> LayerDecision {
        .whole(layer: context.layer, kvHeads: context.kvHeads, prefill: context.compressionPoint, nominal: context.budget.nominal)
    }
}
