/// `full`: keeps `0 ..< P`. The reference of every metric (official `origin`, and in effect
/// `mean_h2o`). Needs nothing.
public struct FullCache: DeclaredPolicy {
    public init() {}
    public init(parameters: ParameterValues) {}

    public static let declaration = PolicyDeclaration(
        id: "full", summary: "keeps the whole cache (official origin)", paper: "the reference", officialMode: "origin",
        requirements: [], traits: [.sharedByHeads, .reference], color: 0x000000,
        rule: "Keeps 0 ..< P in every head: the reference every metric compares with (the official origin mode).")

    public func decide(_ context: LayerContext) throws -> LayerDecision { context.whole() }
}
