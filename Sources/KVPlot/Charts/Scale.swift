import Foundation

/// A tick: a data value and its label.
public struct Tick: Sendable, Hashable {
    public var value: Double
    public var label: String
    public init(_ value: Double, _ label: String) { self.value = value; self.label = label }
}

/// A continuous map from a data domain to the unit interval (axes, colour bars).
public enum Scale: Sendable, Hashable {
    case linear(ClosedRange<Double>)
    /// Base-10 logarithmic; the domain must be positive.
    case log(ClosedRange<Double>)
    case power(gamma: Double, ClosedRange<Double>)

    /// The data domain.
    public var domain: ClosedRange<Double> {
        switch self {
        case .linear(let d), .log(let d), .power(_, let d): return d
        }
    }

    /// The position of `v` in the domain as a fraction (0 = lower bound, 1 = upper), unclamped.
    public func fraction(_ v: Double) -> Double {
        let d = domain
        switch self {
        case .linear:
            return d.upperBound == d.lowerBound ? 0.5 : (v - d.lowerBound) / (d.upperBound - d.lowerBound)
        case .log:
            guard v > 0, d.lowerBound > 0, d.upperBound > d.lowerBound else { return v > 0 ? 0.5 : -.infinity }
            return (log10(v) - log10(d.lowerBound)) / (log10(d.upperBound) - log10(d.lowerBound))
        case .power(let g, _):
            let u = d.upperBound == d.lowerBound ? 0.5 : (v - d.lowerBound) / (d.upperBound - d.lowerBound)
            return u <= 0 ? u : pow(u, g)
        }
    }

    /// Ticks inside the domain: "nice" steps (1, 2, 2.5, 5 × 10ᵏ) for linear and power scales,
    /// decades (`1e-4 … 1`) for log scales.
    public func ticks(target: Int = 5) -> [Tick] {
        switch self {
        case .linear(let d), .power(_, let d): return Ticks.linear(d, target: target)
        case .log(let d): return Ticks.log(d, target: target)
        }
    }
}

/// Tick generation and formatting.
public enum Ticks {
    /// The "nice" step (1, 2, 2.5 or 5 × 10ᵏ) closest to `span / target` from above.
    public static func niceStep(span: Double, target: Int) -> Double {
        guard span > 0, span.isFinite, target > 0 else { return 1 }
        let raw = span / Double(target)
        let mag = pow(10, floor(log10(raw)))
        for m in [1.0, 2.0, 2.5, 5.0, 10.0] where m * mag >= raw * 0.999_999 { return m * mag }
        return 10 * mag
    }

    /// Linear ticks at multiples of a nice step inside `domain` (ends included when on a step).
    public static func linear(_ domain: ClosedRange<Double>, target: Int = 5) -> [Tick] {
        let span = domain.upperBound - domain.lowerBound
        guard span > 0 else { return [Tick(domain.lowerBound, format(domain.lowerBound, step: 1))] }
        let step = niceStep(span: span, target: target)
        let eps = step * 1e-9
        var k = (domain.lowerBound / step - 1e-9).rounded(.up)
        var out: [Tick] = []
        while k * step <= domain.upperBound + eps, out.count < 100 {
            let v = k * step
            out.append(Tick(v, format(v, step: step)))
            k += 1
        }
        return out
    }

    /// Decade ticks inside `domain` (every n-th decade when there are more than `2 * target`).
    /// Falls back to linear ticks when the domain spans less than one decade.
    public static func log(_ domain: ClosedRange<Double>, target: Int = 5) -> [Tick] {
        guard domain.lowerBound > 0 else { return linear(domain, target: target) }
        let lo = Int((log10(domain.lowerBound) - 1e-9).rounded(.up))
        let hi = Int((log10(domain.upperBound) + 1e-9).rounded(.down))
        guard hi > lo else { return linear(domain, target: target) }
        let every = max(1, Int((Double(hi - lo + 1) / Double(2 * target)).rounded(.up)))
        return stride(from: lo, through: hi, by: 1).filter { ($0 - hi) % every == 0 }.map {
            Tick(pow(10, Double($0)), decade($0))
        }
    }

    /// The label of 10^k: `1e-4`, `0.1`→`1e-1`, `1`, `10`, `100`, `1000`, `1e4`.
    public static func decade(_ k: Int) -> String {
        switch k {
        case 0: return "1"
        case 1 ... 3: return "1" + String(repeating: "0", count: k)
        default: return "1e\(k)"
        }
    }

    /// `v` with as many decimals as `step` needs; `-0` prints as `0`.
    public static func format(_ v: Double, step: Double) -> String {
        var decimals = 0
        if step < 1 {
            decimals = Int((-log10(step)).rounded(.up))
            // 0.25, 2.5 × 10ᵏ steps need one more digit.
            let scaled = step * pow(10, Double(decimals))
            if abs(scaled - scaled.rounded()) > 1e-6 { decimals += 1 }
        } else if abs(step - step.rounded()) > 1e-9 {
            decimals = 1
        }
        decimals = min(decimals, 8)
        if abs(v) < step * 1e-9 { return decimals == 0 ? "0" : String(format: "%.\(decimals)f", 0.0) }
        if abs(v) >= 1e6 || (abs(v) < 1e-4 && v != 0) { return String(format: "%.3g", v) }
        return String(format: "%.\(decimals)f", v)
    }

    /// Compact label for a value without a known step (legend numbers, titles).
    public static func compact(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e9 { return String(Int(v)) }
        return String(format: "%.3g", v)
    }
}
