import Foundation

/// One line of a line chart.
public struct LineSeries: Sendable, Hashable {
    public var label: String
    public var points: [Point]
    public var color: RGB
    public var dash: [Double]
    public var marker: MarkerShape
    public var lineWidth: Double
    /// Optional band (min–max or ±1 sd): lower and upper y per point, drawn translucent.
    public var band: [ClosedRange<Double>]?
    /// x values where the series has no value: a cross in its colour just above the x axis.
    public var missing: [Double]

    public init(
        label: String, points: [Point], color: RGB, dash: [Double] = [], marker: MarkerShape = .circle,
        lineWidth: Double = 1.5, band: [ClosedRange<Double>]? = nil, missing: [Double] = []
    ) {
        self.label = label; self.points = points; self.color = color; self.dash = dash; self.marker = marker
        self.lineWidth = lineWidth; self.band = band; self.missing = missing
    }

    /// A series in a policy's style.
    public init(style s: PolicyStyle, label: String, points: [Point], band: [ClosedRange<Double>]? = nil, missing: [Double] = []) {
        self.init(label: label, points: points, color: s.color, dash: s.dash, marker: s.marker, band: band, missing: missing)
    }

    /// Its legend entry.
    public var legendEntry: LegendEntry { LegendEntry(label, key: .line(color, dash: dash, marker: marker)) }
}

/// A horizontal reference line (e.g. the full-cache value).
public struct ReferenceLine: Sendable, Hashable {
    public var y: Double
    public var label: String?
    public var style: StrokeStyle
    public init(y: Double, label: String? = nil, style: StrokeStyle = StrokeStyle(.black, width: 1, dash: [4.5, 2.25])) {
        self.y = y; self.label = label; self.style = style
    }
}

/// Where a chart's legend goes.
public enum LegendPlacement: String, Sendable, Hashable {
    case none, right, below
    /// Right when there are at most 8 entries, below otherwise.
    case automatic
}

/// A line chart with markers, optional bands, a horizontal reference line and a legend.
public struct LineChart: Chart {
    public var series: [LineSeries]
    public var xAxis: Axis
    public var yAxis: Axis
    public var reference: ReferenceLine?
    public var legend: LegendPlacement
    /// Space for axes around the plot area (legend space is added on top of this).
    public var insets: EdgeInsets
    public var panelTitle: String?
    public var grid: Bool
    /// x values marked by thin grey vertical lines across the plot (default none).
    public var verticals: [Double] = []

    public init(
        series: [LineSeries], xAxis: Axis, yAxis: Axis, reference: ReferenceLine? = nil,
        legend: LegendPlacement = .automatic, insets: EdgeInsets = EdgeInsets(top: 8, left: 48, bottom: 36, right: 10),
        panelTitle: String? = nil, grid: Bool = true
    ) {
        self.series = series; self.xAxis = xAxis; self.yAxis = yAxis; self.reference = reference
        self.legend = legend; self.insets = insets; self.panelTitle = panelTitle; self.grid = grid
    }

    /// Legend entries, in series order (then the reference line).
    public var legendEntries: [LegendEntry] {
        var e = series.map(\.legendEntry)
        if let r = reference, let l = r.label { e.append(LegendEntry(l, key: .line(r.style.color.rgb, dash: r.style.dash, marker: .none))) }
        return e
    }

    var resolvedPlacement: LegendPlacement {
        switch legend {
        case .automatic: return legendEntries.count > 8 ? .below : .right
        default: return legend
        }
    }

    /// The plot area and the legend frame for a chart frame.
    public func layout(in canvas: some Canvas, frame: Rect) -> (plot: Rect, legend: Rect?) {
        var plot = frame.inset(by: insets)
        let entries = legendEntries
        guard !entries.isEmpty else { return (plot, nil) }
        switch resolvedPlacement {
        case .right:
            let lg = Legend(entries)
            let w = lg.columnWidth(in: canvas)
            plot.size.width = max(10, plot.width - w - 12)
            return (plot, Rect(x: plot.maxX + 12, y: plot.minY, width: w, height: lg.size(in: canvas, width: w).height))
        case .below:
            let lg = Legend(entries, layout: .rows)
            let h = lg.size(in: canvas, width: frame.width - insets.left).height
            plot.size.height = max(10, plot.height - h - 6)
            return (plot, Rect(x: plot.minX, y: frame.maxY - h, width: frame.maxX - plot.minX - 4, height: h))
        case .none, .automatic:
            return (plot, nil)
        }
    }

    public func draw(in canvas: some Canvas, frame: Rect) {
        let (plot, legendFrame) = layout(in: canvas, frame: frame)
        if grid {
            var g = Path()
            for t in yAxis.resolvedTicks {
                let y = yAxis.coordinate(t.value, in: plot, side: .left)
                guard y.isFinite, y >= plot.minY - 0.01, y <= plot.maxY + 0.01 else { continue }
                g.move(to: Point(plot.minX, y)); g.line(to: Point(plot.maxX, y))
            }
            canvas.stroke(g, StrokeStyle(RGB(hex: 0xE6E6E6), width: 0.5))
        }
        xAxis.draw(in: canvas, plot: plot, side: .bottom)
        yAxis.draw(in: canvas, plot: plot, side: .left)
        canvas.pushClip(plot.inset(-3))
        if !verticals.isEmpty {
            var v = Path()
            for x in verticals {
                let px = xAxis.coordinate(x, in: plot, side: .bottom)
                guard px.isFinite else { continue }
                v.move(to: Point(px, plot.minY)); v.line(to: Point(px, plot.maxY))
            }
            canvas.stroke(v, StrokeStyle(RGB(hex: 0xB0B0B0), width: 0.75, dash: [2, 2]))
        }
        if let r = reference {
            let y = yAxis.coordinate(r.y, in: plot, side: .left)
            if y.isFinite { canvas.line(from: Point(plot.minX, y), to: Point(plot.maxX, y), r.style) }
        }
        func pt(_ p: Point) -> Point {
            Point(xAxis.coordinate(p.x, in: plot, side: .bottom), yAxis.coordinate(p.y, in: plot, side: .left))
        }
        for s in series {
            if let band = s.band, band.count == s.points.count, !band.isEmpty {
                let upper = zip(s.points, band).map { pt(Point($0.x, $1.upperBound)) }
                let lower = zip(s.points, band).map { pt(Point($0.x, $1.lowerBound)) }.reversed()
                canvas.fill(.polygon(upper + lower), RGBA(s.color, alpha: 0.18))
            }
        }
        // Solid lines first, then dashed ones over them, then every marker (filled circles under
        // open shapes): lines with equal values stay visible through the dashes and marker rings.
        let order = series.indices.sorted { (series[$0].dash.isEmpty ? 0 : 1, $0) < (series[$1].dash.isEmpty ? 0 : 1, $1) }
        for i in order {
            let s = series[i]
            let pts = s.points.map(pt).filter { $0.x.isFinite && $0.y.isFinite }
            canvas.stroke(.polyline(pts), StrokeStyle(s.color, width: s.lineWidth, dash: s.dash, join: .round))
        }
        for i in order.sorted(by: { (series[$0].marker == .circle ? 0 : 1, $0) < (series[$1].marker == .circle ? 0 : 1, $1) }) {
            let s = series[i]
            let pts = s.points.map(pt).filter { $0.x.isFinite && $0.y.isFinite }
            // A one-point series with no marker would draw nothing: give it a circle.
            let marker = s.marker == .none && pts.count == 1 ? .circle : s.marker
            for p in pts { Markers.draw(marker, at: p, color: s.color, in: canvas) }
        }
        // Missing values: crosses just above the x axis, stacked when several series miss one x.
        var stacked: [Double: Int] = [:]
        for s in series {
            for x in s.missing {
                let px = xAxis.coordinate(x, in: plot, side: .bottom)
                guard px.isFinite else { continue }
                let level = stacked[x, default: 0]
                stacked[x] = level + 1
                Markers.draw(.cross, at: Point(px, plot.maxY - 4 - 7 * Double(level)), color: s.color, in: canvas)
            }
        }
        canvas.popClip()
        if let panelTitle { canvas.text(panelTitle, at: Point(plot.midX, plot.minY - 3), style: .axisLabel, anchor: .bottom) }
        if let legendFrame {
            Legend(legendEntries, layout: resolvedPlacement == .below ? .rows : .column).draw(in: canvas, frame: legendFrame)
        }
    }
}
