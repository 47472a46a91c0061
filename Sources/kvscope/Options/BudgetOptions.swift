import ArgumentParser
import KVPolicies

/// The budget flags of docs/policies.md#budgets: exactly one of `--budget`, `--tokens`, or the pair
/// `--hh-ratio`/`--recent-ratio`.
struct BudgetOptions: ParsableArguments {
    @Option(name: .customLong("budget"), help: "Fraction of the prefill kept, 0 < b ≤ 1: C = int(P·b), r = int(C·s), hh = C − r.")
    var budget: Double?
    @Option(name: .customLong("recent-share"), help: "Share s of C spent on the recent window, with --budget or --tokens (default 0.5).")
    var recentShare: Double?
    @Option(name: .customLong("tokens"), help: "Absolute budget: C = min(N, P), r = int(C·s).")
    var tokens: Int?
    @Option(name: .customLong("hh-ratio"), help: "The official pair: hh = int(P·x). Use with --recent-ratio to reproduce the LOOK-M runs.")
    var hhRatio: Double?
    @Option(name: .customLong("recent-ratio"), help: "The official pair: r = int(P·y).")
    var recentRatio: Double?

    func validate() throws {
        let forms = [budget != nil, tokens != nil, hhRatio != nil || recentRatio != nil].filter { $0 }.count
        guard forms <= 1 else { throw ValidationError("use only one of --budget, --tokens, or --hh-ratio with --recent-ratio") }
        // No budget at all is reported by `spec()` when the command runs, so that an unknown option
        // (`--budgets` for `--budget`) is named first.
        guard forms == 1 else { return }
        if (hhRatio == nil) != (recentRatio == nil) { throw ValidationError("--hh-ratio and --recent-ratio go together") }
        if recentShare != nil, budget == nil, tokens == nil { throw ValidationError("--recent-share applies to --budget or --tokens only") }
        if let p = try spec().problem { throw ValidationError(p) }
    }

    /// The budget the flags describe.
    func spec() throws -> BudgetSpec {
        let s = recentShare ?? 0.5
        if let b = budget { return .fraction(b, recentShare: s) }
        if let n = tokens { return .tokens(n, recentShare: s) }
        if let x = hhRatio, let y = recentRatio { return .ratios(heavy: x, recent: y) }
        throw ValidationError("give a budget: --budget b, --tokens N, or --hh-ratio x --recent-ratio y")
    }
}
