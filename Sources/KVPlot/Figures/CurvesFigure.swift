import Foundation

/// One policy's curve: metric values at the measured budgets.
public struct Curve: Sendable, Hashable {
    /// Policy label.
    public var policy: String
    /// Colour, dash and marker (from the policy's declaration; a hashed colour for a bare label).
    public var style: PolicyStyle
    /// Legend label (defaults to the id).
    public var label: String
    /// x values (kept ratio or nominal budget).
    public var x: [Double]
    /// y values (metric).
    public var y: [Double]
    /// Optional per-point band (min–max or ±1 sd across traces).
    public var band: [ClosedRange<Double>]?
    /// x values of settings the policy has no value at (marked by a cross on the x axis).
    public var missing: [Double]

    public init(
        policy: String, style: PolicyStyle? = nil, label: String? = nil, x: [Double], y: [Double], band: [ClosedRange<Double>]? = nil,
        missing: [Double] = []
    ) {
        precondition(x.count == y.count, "Curve: x and y differ in length")
        self.policy = policy; self.style = style ?? .of(policy); self.label = label ?? policy; self.x = x; self.y = y; self.band = band
        self.missing = missing
    }
}

/// Builds the budget-curves figure: metric versus kept ratio, one line per
/// policy in its fixed style with markers, a dashed black full-cache reference line and a
/// legend (right, or below beyond 8 entries).
public struct CurvesFigure: Sendable {
    public var curves: [Curve]
    public var metric: String
    public var xLabel: String
    public var title: String
    public var subtitle: [String]
    public var logX: Bool
    public var yRange: ClosedRange<Double>?
    public var reference: Double?
    public var referenceLabel: String
    public var size: Size

    /// - Parameters:
    ///   - curves: one per policy, drawn in the given order (legend order too).
    ///   - metric: y-axis label (the metric id or its name).
    ///   - xLabel: x-axis label; default the actual kept ratio.
    ///   - title, subtitle: the title block.
    ///   - logX: logarithmic x axis.
    ///   - yRange: fixed y range (e.g. `0...1` for recall); nil = from the data.
    ///   - reference: full-cache value (recall 1, error 0); nil = none.
    ///   - referenceLabel: its legend label.
    ///   - size: page size in points.
    public init(
        curves: [Curve], metric: String, xLabel: String = "kept ratio (mean C_act / P)", title: String,
        subtitle: [String] = [], logX: Bool = false, yRange: ClosedRange<Double>? = nil, reference: Double? = nil,
        referenceLabel: String = "full cache", size: Size = Size(460, 300)
    ) {
        self.curves = curves; self.metric = metric; self.xLabel = xLabel; self.title = title; self.subtitle = subtitle
        self.logX = logX; self.yRange = yRange; self.reference = reference; self.referenceLabel = referenceLabel
        self.size = size
    }

    /// A domain that covers `values`, widened to multiples of a nice step.
    static func niceDomain(_ values: [Double], target: Int = 5) -> ClosedRange<Double> {
        let finite = values.filter(\.isFinite)
        guard var lo = finite.min(), var hi = finite.max() else { return 0 ... 1 }
        if hi == lo { lo -= 0.5; hi += 0.5 }
        let step = Ticks.niceStep(span: hi - lo, target: target)
        return (lo / step).rounded(.down) * step ... (hi / step).rounded(.up) * step
    }

    static func logDomain(_ values: [Double]) -> ClosedRange<Double> {
        let pos = values.filter { $0 > 0 && $0.isFinite }
        guard let lo = pos.min(), let hi = pos.max() else { return 0.01 ... 1 }
        let a = pow(10, floor(log10(lo))), b = pow(10, ceil(log10(hi)))
        return a ... max(b, a * 10)
    }

    public func build() -> Figure {
        let xs = curves.flatMap(\.x) + curves.flatMap(\.missing)
        var ys = curves.flatMap(\.y) + curves.flatMap { $0.band?.flatMap { [$0.lowerBound, $0.upperBound] } ?? [] }
        if let reference { ys.append(reference) }
        let xDomain = logX ? Self.logDomain(xs) : Self.niceDomain(xs)
        let yDomain = yRange ?? Self.niceDomain(ys)
        let xAxis = Axis(scale: logX ? .log(xDomain) : .linear(xDomain), label: xLabel)
        let yAxis = Axis(scale: .linear(yDomain), label: metric)
        let series = curves.map { c in
            LineSeries(style: c.style, label: c.label, points: zip(c.x, c.y).map { Point($0, $1) }, band: c.band, missing: c.missing)
        }
        let ref = reference.map { ReferenceLine(y: $0, label: referenceLabel) }
        let chart = LineChart(series: series, xAxis: xAxis, yAxis: yAxis, reference: ref)
        var fig = Figure(size: size, title: title, subtitle: subtitle)
        fig.add(chart, in: Rect(x: 4, y: fig.headerHeight, width: size.width - 8, height: size.height - fig.headerHeight - 4))
        return fig
    }
}
