/// How a budget is given (docs/policies.md#budgets). Exactly one form is used per run.
public enum BudgetSpec: Sendable, Hashable, Codable, CustomStringConvertible {
    /// `--budget b --recent-share s`: `C = Int(P·b)`, `r = Int(C·s)`, `hh = C − r`.
    case fraction(Double, recentShare: Double = 0.5)
    /// `--tokens N --recent-share s`: `C = min(N, P)`, `r = Int(C·s)`, `hh = C − r`.
    case tokens(Int, recentShare: Double = 0.5)
    /// `--hh-ratio x --recent-ratio y` (the official pair): `hh = Int(P·x)`, `r = Int(P·y)`.
    case ratios(heavy: Double, recent: Double)

    /// Resolves the budget at compression point `P`. Products are IEEE `Double` products truncated
    /// toward zero, exactly Python's `int(P * x)`.
    public func resolve(_ P: Int) -> Budget {
        switch self {
        case let .fraction(b, s):
            let c = Int(Double(P) * b)
            let r = Int(Double(c) * s)
            return Budget(heavy: c - r, recent: r, spec: self, prefill: P)
        case let .tokens(n, s):
            let c = min(n, P)
            let r = Int(Double(c) * s)
            return Budget(heavy: c - r, recent: r, spec: self, prefill: P)
        case let .ratios(x, y):
            let hh = Int(Double(P) * x)
            let r = Int(Double(P) * y)
            return Budget(heavy: hh, recent: r, spec: self, prefill: P)
        }
    }

    /// The fraction of the prefill asked for, when the budget was given as one (`--budget`).
    public var fraction: Double? { if case let .fraction(b, _) = self { b } else { nil } }

    public var description: String {
        switch self {
        case let .fraction(b, s): "budget \(b) (recent share \(s))"
        case let .tokens(n, s): "tokens \(n) (recent share \(s))"
        case let .ratios(x, y): "hh-ratio \(x), recent-ratio \(y)"
        }
    }

    /// Checks the ranges of docs/policies.md#budgets; returns a one-line message or nil.
    public var problem: String? {
        switch self {
        case let .fraction(b, s):
            if !(b > 0 && b <= 1) { return "--budget must be in (0, 1], got \(b)" }
            if !(s >= 0 && s <= 1) { return "--recent-share must be in [0, 1], got \(s)" }
        case let .tokens(n, s):
            if n < 0 { return "--tokens must be ≥ 0, got \(n)" }
            if !(s >= 0 && s <= 1) { return "--recent-share must be in [0, 1], got \(s)" }
        case let .ratios(x, y):
            if !(x >= 0 && x <= 1) { return "--hh-ratio must be in [0, 1], got \(x)" }
            if !(y >= 0 && y <= 1) { return "--recent-ratio must be in [0, 1], got \(y)" }
        }
        return nil
    }
}

/// A budget resolved at a compression point: heavy hitters `hh`, recent window `r`, nominal `C`.
public struct Budget: Sendable, Hashable {
    /// Heavy-hitter count `hh`.
    public var heavy: Int
    /// Recent-window size `r`.
    public var recent: Int
    /// How it was given.
    public var spec: BudgetSpec
    /// The compression point `P` it was resolved at.
    public var prefill: Int

    public init(heavy: Int, recent: Int, spec: BudgetSpec, prefill: Int) {
        self.heavy = heavy
        self.recent = recent
        self.spec = spec
        self.prefill = prefill
    }

    /// How `r` was computed, for messages ("int(64 × 0.01) = 0"): the recent window's formula of
    /// `spec` (``BudgetSpec/resolve(_:)``) at `P = prefill`, with `recent` as its result.
    public var recentFormula: String {
        switch spec {
        case let .fraction(b, s): "int(int(\(prefill) × \(b)) × \(s)) = \(recent)"
        case let .tokens(n, s): "int(\(min(n, prefill)) × \(s)) = \(recent)"
        case let .ratios(_, y): "int(\(prefill) × \(y)) = \(recent)"
        }
    }

    /// Nominal capacity `C = hh + r`.
    public var nominal: Int { heavy + recent }
}
