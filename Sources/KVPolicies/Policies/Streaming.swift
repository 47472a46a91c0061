/// `streaming`: StreamingLLM. Keeps the sinks `[0, n_sink)` and the most recent `C − n_sink`
/// positions, the same in every head and layer. If `C ≤ n_sink`, keeps `[0, C)`.
/// Does not use `--recent-share`. A replay cannot model StreamingLLM's in-cache position
/// re-assignment. KVCache-Factory's variant (first `C − w` + last `w`) is `sinks = C − w`.
///
/// Based on StreamingLLM (arXiv 2309.17453).
public struct Streaming: DeclaredPolicy {
    /// Attention sinks `n_sink` (default 4).
    public var sinks: Int
    public init(sinks: Int = 4) { self.sinks = sinks }
    public init(parameters p: ParameterValues) { self.init(sinks: p.int("sinks")) }

    public static let declaration = PolicyDeclaration(
        id: "streaming", summary: "StreamingLLM: sinks + the most recent C − sinks", paper: "StreamingLLM, arXiv 2309.17453",
        parameters: [.integer("sinks", 4, in: 0 ... 1 << 20, "attention sinks")], requirements: [],
        traits: [.keepsExactlyC, .sharedByHeads], color: 0x999933,
        rule: """
            Keeps the sinks 0 ..< n_sink and the most recent C − n_sink positions, the same in every head and \
            layer; if C ≤ n_sink, keeps 0 ..< C. --recent-share is not used. A replay cannot model \
            StreamingLLM's re-assignment of positions inside the cache. KVCache-Factory's variant (first C − w \
            plus last w) is sinks = C − w.
            """)

    public func decide(_ context: LayerContext) throws -> LayerDecision {
        if let d = context.wholeIfWithinBudget() { return d }
        let P = context.compressionPoint, C = context.budget.nominal
        return context.sameInEveryHead(kept: C <= sinks ? Array(0 ..< C) : Array(0 ..< sinks) + Array((P - (C - sinks)) ..< P))
    }
}
