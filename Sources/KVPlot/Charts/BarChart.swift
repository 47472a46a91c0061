import Foundation

/// One series (one colour) of a bar chart: a value per category.
public struct BarSeries: Sendable, Hashable {
    public var label: String
    public var color: RGB
    public var values: [Double]
    /// Hatch the bars (pseudo-images).
    public var hatched: Bool
    public init(label: String, color: RGB, values: [Double], hatched: Bool = false) {
        self.label = label; self.color = color; self.values = values; self.hatched = hatched
    }
}

/// A vertical bar chart, grouped (series side by side) or stacked (series on top of each other).
public struct BarChart: Chart {
    public enum Mode: String, Sendable, Hashable { case grouped, stacked }
    public var categories: [String]
    public var series: [BarSeries]
    public var mode: Mode
    public var yAxis: Axis
    public var xLabel: String?
    public var legend: LegendPlacement
    public var insets: EdgeInsets
    public var panelTitle: String?
    /// Rotate category labels by this many degrees (e.g. 30 for long policy ids).
    public var labelAngle: Double

    public init(
        categories: [String], series: [BarSeries], mode: Mode = .stacked, yAxis: Axis, xLabel: String? = nil,
        legend: LegendPlacement = .right, insets: EdgeInsets = EdgeInsets(top: 8, left: 44, bottom: 34, right: 8),
        panelTitle: String? = nil, labelAngle: Double = 0
    ) {
        self.categories = categories; self.series = series; self.mode = mode; self.yAxis = yAxis; self.xLabel = xLabel
        self.legend = legend; self.insets = insets; self.panelTitle = panelTitle; self.labelAngle = labelAngle
    }

    public var legendEntries: [LegendEntry] {
        series.map { LegendEntry($0.label, key: $0.hatched ? .hatchedSwatch($0.color) : .swatch($0.color)) }
    }

    /// The bar rectangles: `[series][category]`, for a plot area.
    public func barRects(plot: Rect) -> [[Rect]] {
        let n = max(1, categories.count)
        let slot = plot.width / Double(n)
        let barArea = slot * 0.75
        let y0 = yAxis.coordinate(max(yAxis.scale.domain.lowerBound, 0), in: plot, side: .left)
        var stackTop = [Double](repeating: 0, count: n)
        return series.enumerated().map { si, s in
            (0 ..< n).map { ci in
                let v = ci < s.values.count ? s.values[ci] : 0
                let x0 = plot.minX + slot * Double(ci) + (slot - barArea) / 2
                switch mode {
                case .grouped:
                    let w = barArea / Double(max(1, series.count))
                    let yv = yAxis.coordinate(v, in: plot, side: .left)
                    return Rect(x: x0 + w * Double(si), y: min(yv, y0), width: w, height: abs(y0 - yv))
                case .stacked:
                    let base = stackTop[ci]
                    stackTop[ci] += v
                    let yb = yAxis.coordinate(base, in: plot, side: .left), yt = yAxis.coordinate(base + v, in: plot, side: .left)
                    return Rect(x: x0, y: min(yt, yb), width: barArea, height: abs(yb - yt))
                }
            }
        }
    }

    public func draw(in canvas: some Canvas, frame: Rect) {
        var plot = frame.inset(by: insets)
        var legendFrame: Rect?
        if legend != .none && !series.isEmpty {
            let lg = Legend(legendEntries)
            let w = lg.columnWidth(in: canvas)
            plot.size.width = max(10, plot.width - w - 10)
            legendFrame = Rect(x: plot.maxX + 10, y: plot.minY, width: w, height: lg.size(in: canvas, width: w).height)
        }
        let rects = barRects(plot: plot)
        for (s, rs) in zip(series, rects) {
            for r in rs where r.height > 0 {
                canvas.fill(r, s.color)
                if s.hatched { Hatch.draw(in: canvas, rect: r) }
            }
        }
        yAxis.draw(in: canvas, plot: plot, side: .left)
        canvas.line(from: Point(plot.minX, plot.maxY), to: Point(plot.maxX, plot.maxY), .axis)
        let slot = plot.width / Double(max(1, categories.count))
        var lastEnd = -Double.infinity
        for (i, c) in categories.enumerated() {
            let x = plot.minX + slot * (Double(i) + 0.5)
            if labelAngle == 0 {
                let w = canvas.measure(c, style: .tick).width
                guard x - w / 2 >= lastEnd + 2 else { continue }
                lastEnd = x + w / 2
                canvas.text(c, at: Point(x, plot.maxY + 3), style: .tick, anchor: .top, angle: 0)
            } else {
                canvas.text(c, at: Point(x + 2, plot.maxY + 3), style: .tick, anchor: .topRight, angle: labelAngle)
            }
        }
        if let xLabel { canvas.text(xLabel, at: Point(plot.midX, frame.maxY - 2), style: .axisLabel, anchor: .bottom, angle: 0) }
        if let panelTitle { canvas.text(panelTitle, at: Point(plot.midX, plot.minY - 3), style: .axisLabel, anchor: .bottom) }
        if let legendFrame { Legend(legendEntries).draw(in: canvas, frame: legendFrame) }
    }
}
