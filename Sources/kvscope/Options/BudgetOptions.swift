import ArgumentParser
import KVPolicies

/// The budget flags of docs/policies.md#budgets: exactly one of `--budget`, `--tokens`, or the pair
/// `--hh-ratio`/`--recent-ratio`. `simulate` and every `render` subcommand that replays a policy
/// take this one group, so a figure can be drawn at exactly the setting just simulated.
struct BudgetOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Fraction of the prefill kept, 0 < b ≤ 1: C = int(P·b), r = int(C·s), hh = C − r.", valueName: "b"))
    var budget: Double?
    @Option(help: ArgumentHelp("Share s of C spent on the recent window, with --budget or --tokens (default 0.5).", valueName: "s"))
    var recentShare: Double?
    @Option(help: ArgumentHelp("Absolute budget: C = min(N, P), r = int(C·s).", valueName: "N"))
    var tokens: Int?
    @Option(help: ArgumentHelp("The official pair: hh = int(P·x). Use with --recent-ratio to reproduce the LOOK-M runs.", valueName: "x"))
    var hhRatio: Double?
    @Option(help: ArgumentHelp("The official pair: r = int(P·y).", valueName: "y"))
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

    /// The budget the flags describe, else the fraction `b` with `--recent-share` (default 0.5):
    /// the figures' default budget.
    func spec(default b: Double) -> BudgetSpec {
        (try? spec()) ?? .fraction(b, recentShare: recentShare ?? 0.5)
    }
}

extension BudgetSpec {
    /// The budget as figure titles say it: `0.2`, `0.2 (recent share 0.3)`, `64 tokens`,
    /// `hh-ratio 0.1 + recent-ratio 0.1`.
    var figureText: String {
        func share(_ s: Double) -> String { s == 0.5 ? "" : " (recent share \(s))" }
        switch self {
        case let .fraction(b, s): return "\(b)" + share(s)
        case let .tokens(n, s): return "\(n) tokens" + share(s)
        case let .ratios(x, y): return "hh-ratio \(x) + recent-ratio \(y)"
        }
    }

    /// The budget in a default file name: `b0.2`, `b0.2-s0.3`, `n64`, `hh0.1-r0.1`.
    var fileTag: String {
        func share(_ s: Double) -> String { s == 0.5 ? "" : "-s\(s)" }
        switch self {
        case let .fraction(b, s): return "b\(b)" + share(s)
        case let .tokens(n, s): return "n\(n)" + share(s)
        case let .ratios(x, y): return "hh\(x)-r\(y)"
        }
    }
}
