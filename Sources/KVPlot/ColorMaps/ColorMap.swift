import Foundation

/// A sequential colour map: a 256-entry table looked up at the nearest index.
///
/// Lookup rule: `index = Int((t * 255).rounded())` with `t` clamped to `0...1`; no interpolation.
public enum ColorMap: String, Sendable, Hashable, CaseIterable {
    /// Default sequential map (CC0, BIDS/colormap).
    case viridis
    /// Dark means low; suits sparse attention on white pages (CC0, BIDS/colormap).
    case magma
    /// Colour-vision-deficiency safe (Nuñez et al., PLOS ONE 2018).
    case cividis

    /// The 256 packed `0xRRGGBB` entries, index 0 = low.
    public var table: [UInt32] {
        switch self {
        case .viridis: return ColorMapData.viridis
        case .magma: return ColorMapData.magma
        case .cividis: return ColorMapData.cividis
        }
    }

    /// The table index for `t` (clamped to 0...1; NaN maps to 0).
    @inlinable
    public static func index(_ t: Double) -> Int {
        guard t > 0 else { return 0 }
        guard t < 1 else { return 255 }
        return Int((t * 255).rounded())
    }

    /// The colour for a normalised value `t` in 0...1 (clamped).
    public func color(_ t: Double) -> RGB { RGB(hex: table[Self.index(t)]) }
}

/// A map from data values to `0...1` before colour lookup.
public enum Normalization: Sendable, Hashable {
    /// `t = (v - lo) / (hi - lo)`.
    case linear(ClosedRange<Double>)
    /// `t = (log10 v - log10 lo) / (log10 hi - log10 lo)`; non-positive values map to 0.
    case log(ClosedRange<Double>)
    /// `t = ((v - lo) / (hi - lo))^gamma` (gamma < 1 lifts small values).
    case power(gamma: Double, ClosedRange<Double>)

    /// The value range.
    public var range: ClosedRange<Double> {
        switch self {
        case .linear(let r), .log(let r), .power(_, let r): return r
        }
    }

    /// Whether the scale is logarithmic.
    public var isLog: Bool { if case .log = self { return true } else { return false } }

    /// The normalised value, clamped to 0...1. NaN stays NaN (drawn as masked).
    public func callAsFunction(_ v: Double) -> Double {
        if v.isNaN { return .nan }
        let t: Double
        switch self {
        case .linear(let r):
            t = r.upperBound > r.lowerBound ? (v - r.lowerBound) / (r.upperBound - r.lowerBound) : 0
        case .log(let r):
            guard v > 0, r.lowerBound > 0, r.upperBound > r.lowerBound else { return 0 }
            t = (Foundation.log10(v) - Foundation.log10(r.lowerBound)) / (Foundation.log10(r.upperBound) - Foundation.log10(r.lowerBound))
        case .power(let g, let r):
            let u = r.upperBound > r.lowerBound ? (v - r.lowerBound) / (r.upperBound - r.lowerBound) : 0
            t = u <= 0 ? 0 : Foundation.pow(min(u, 1), g)
        }
        return min(max(t, 0), 1)
    }

    /// The scale for an axis showing this normalisation's range (colour bars).
    public var scale: Scale {
        switch self {
        case .log(let r): return .log(r)
        case .linear(let r): return .linear(r)
        case .power(let g, let r): return .power(gamma: g, r)
        }
    }

    /// Log normalisation whose lower bound is the 1st percentile of the positive finite values,
    /// floored at `floor` (`--vmin auto`); upper bound `upper`.
    public static func autoLog(_ values: [Float], upper: Double = 1, floor: Double = 1e-6) -> Normalization {
        var positive: [Double] = []
        positive.reserveCapacity(values.count)
        for v in values where v > 0 && v.isFinite { positive.append(Double(v)) }
        guard !positive.isEmpty else { return .log(floor ... upper) }
        positive.sort()
        let index: Int = min(positive.count - 1, Int(Double(positive.count - 1) * 0.01))
        let lo: Double = min(max(positive[index], floor), upper / 10)
        return .log(lo ... upper)
    }
}
