import Foundation

/// The decoding figure (`kvscope render decoding`): a metric versus the generated step `t`, one
/// line per policy in its fixed style, with the full cache's value as the dashed black reference.
/// Each point is the metric at step `t` of a decoding replay: the mean over the generated rows
/// `1 … t` (docs/metrics.md#replay-through-decoding). Steps are whole numbers: the x axis runs
/// `1 … steps` (ticks on 1 and on multiples of a nice integer step), and optional vertical marks
/// show the steps after which the cache was compressed again. The y range is the data's (with the
/// reference) unless given: policies a few hundredths apart stay apart.
public struct DecodingFigure: Sendable {
    public var curves: [Curve]
    public var metric: String
    public var steps: Int
    public var title: String
    public var subtitle: [String]
    public var yRange: ClosedRange<Double>?
    public var reference: Double?
    /// Steps after which the cache was compressed again (drawn as thin grey verticals; empty: none).
    public var recompressedAfter: [Int]
    public var size: Size

    /// - Parameters:
    ///   - curves: one per policy, `x` = steps `1 … steps`, drawn in order (legend order too).
    ///   - metric: the y-axis label.
    ///   - steps: the number of generated steps (the x axis runs `1 … steps`; at least 1).
    ///   - yRange: fixed y range (`0...1` for recalls); nil = from the data.
    ///   - reference: the full cache's value (recall 1, error 0); nil = none.
    public init(
        curves: [Curve], metric: String, steps: Int, title: String, subtitle: [String] = [],
        yRange: ClosedRange<Double>? = nil, reference: Double? = nil, recompressedAfter: [Int] = [],
        size: Size = Size(560, 320)
    ) {
        self.curves = curves; self.metric = metric; self.steps = max(1, steps); self.title = title; self.subtitle = subtitle
        self.yRange = yRange; self.reference = reference; self.recompressedAfter = recompressedAfter; self.size = size
    }

    public func build() -> Figure {
        var ys = curves.flatMap(\.y)
        if let reference { ys.append(reference) }
        let yDomain = yRange ?? CurvesFigure.niceDomain(ys)
        // Integer ticks: step 1 and the multiples of a nice integer step up to the last step.
        let xDomain = (steps == 1 ? 0.5 : 1.0) ... Double(steps) + (steps == 1 ? 0.5 : 0)
        let every = max(1, Int(Ticks.niceStep(span: Double(steps), target: 8).rounded(.up)))
        let ticks = ([1] + Array(stride(from: every, through: steps, by: every)).filter { $0 > 1 }).map { Tick(Double($0), String($0)) }
        let xAxis = Axis(scale: .linear(xDomain), label: "generated step t (rows P … P + t − 1)", ticks: .explicit(ticks))
        let yAxis = Axis(scale: .linear(yDomain), label: metric)
        let series = curves.map { c in LineSeries(style: c.style, label: c.label, points: zip(c.x, c.y).map { Point($0, $1) }) }
        var chart = LineChart(
            series: series, xAxis: xAxis, yAxis: yAxis, reference: reference.map { ReferenceLine(y: $0, label: "full cache") })
        chart.verticals = recompressedAfter.map { Double($0) + 0.5 }
        var fig = Figure(size: size, title: title, subtitle: subtitle)
        fig.add(chart, in: Rect(x: 4, y: fig.headerHeight, width: size.width - 8, height: size.height - fig.headerHeight - 4))
        return fig
    }
}
