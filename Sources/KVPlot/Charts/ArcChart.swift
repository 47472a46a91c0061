import Foundation

/// One merge: an evicted position folded into the slot held by `target`.
public struct MergeArc: Sendable, Hashable {
    public var source: Int
    public var target: Int
    /// The value that colours the arc (cosine similarity μ).
    public var value: Double
    public init(source: Int, target: Int, value: Double) { self.source = source; self.target = target; self.value = value }
}

/// A horizontal token axis with arcs above it from each evicted position to its merge target,
/// a modality strip, kept positions as ticks below, and excluded evictions
/// as small grey crosses.
public struct ArcChart: Chart {
    public var domain: Range<Int>
    public var bands: [ModalityBand]
    public var kept: [Int]
    public var arcs: [MergeArc]
    /// Evicted positions that the merge filter left out.
    public var excluded: [Int]
    public var normalization: Normalization
    public var colorMap: ColorMap
    public var arcWidth: Double
    public var arcAlpha: Double
    public var xLabel: String?
    public var insets: EdgeInsets

    public init(
        domain: Range<Int>, bands: [ModalityBand] = [], kept: [Int] = [], arcs: [MergeArc], excluded: [Int] = [],
        normalization: Normalization = .linear(0 ... 1), colorMap: ColorMap = .viridis, arcWidth: Double = 0.5,
        arcAlpha: Double = 0.6, xLabel: String? = "position", insets: EdgeInsets = EdgeInsets(top: 6, left: 10, bottom: 48, right: 10)
    ) {
        self.domain = domain; self.bands = bands; self.kept = kept; self.arcs = arcs; self.excluded = excluded
        self.normalization = normalization; self.colorMap = colorMap; self.arcWidth = arcWidth; self.arcAlpha = arcAlpha
        self.xLabel = xLabel; self.insets = insets
    }

    /// Evicted tokens the merge filter left out: grey crosses of 3 pt.
    public static let excludedColor = RGB(hex: 0x999999)
    public static let excludedSize = 3.0

    /// The arc area (arcs rise from its bottom edge, the baseline).
    public func plotRect(in frame: Rect) -> Rect { frame.inset(by: insets) }

    /// The x coordinate of the centre of position `p`.
    public func x(_ p: Int, plot: Rect) -> Double {
        plot.minX + (Double(p - domain.lowerBound) + 0.5) / Double(max(1, domain.count)) * plot.width
    }

    public func draw(in canvas: some Canvas, frame: Rect) {
        let plot = plotRect(in: frame)
        let baseline = plot.maxY
        let maxSpan = Double(
            max(1, arcs.filter { domain.contains($0.source) || domain.contains($0.target) }.map { abs($0.target - $0.source) }.max() ?? 1))
        canvas.pushClip(Rect(x: plot.minX, y: plot.minY - 2, width: plot.width, height: plot.height + 2))
        // Sort by value so the most similar merges draw last (on top); ties by position.
        for a in arcs.sorted(by: { ($0.value, $0.source) < ($1.value, $1.source) }) {
            guard domain.contains(a.source) || domain.contains(a.target) else { continue }
            let x0 = x(a.source, plot: plot), x1 = x(a.target, plot: plot)
            let h = plot.height * 0.95 * Double(abs(a.target - a.source)) / maxSpan
            let color = colorMap.color(normalization(a.value))
            canvas.stroke(
                .arc(from: x0, to: x1, baseline: baseline, height: max(h, 1.5)),
                StrokeStyle(color: RGBA(color, alpha: arcAlpha), width: arcWidth))
        }
        canvas.popClip()
        canvas.line(from: Point(plot.minX, baseline), to: Point(plot.maxX, baseline), .axis)
        let strip = Rect(x: plot.minX, y: baseline + 2, width: plot.width, height: 9)
        BandStrip(bands: bands, domain: domain).draw(in: canvas, frame: strip)
        // Span labels ("text", "image 1") inside the strip, centred in their span, when they fit.
        let ls = TextStyle(size: 6.5, color: RGB(hex: 0x222222))
        for b in bands {
            guard let label = b.label, let r = BandStrip(bands: [], domain: domain).rect(of: b, in: strip) else { continue }
            if canvas.measure(label, style: ls).width + 4 <= r.width {
                canvas.text(label, at: Point(r.midX, r.midY), style: ls, anchor: .center)
            }
        }
        var ticks = Path()
        for k in kept where domain.contains(k) {
            let xx = x(k, plot: plot)
            ticks.move(to: Point(xx, strip.maxY + 2)); ticks.line(to: Point(xx, strip.maxY + 7))
        }
        if !ticks.isEmpty { canvas.stroke(ticks, StrokeStyle(Palette.kept, width: 0.6)) }
        for e in excluded where domain.contains(e) {
            Markers.draw(.cross, at: Point(x(e, plot: plot), baseline - 3), color: Self.excludedColor, size: Self.excludedSize, in: canvas)
        }
        let axisRect = Rect(x: plot.minX, y: plot.minY, width: plot.width, height: strip.maxY + 9 - plot.minY)
        let xs = Axis(
            scale: .linear(Double(domain.lowerBound) ... Double(domain.upperBound)), label: xLabel,
            ticks: bands.isEmpty ? .auto(target: 6) : .explicit(BandStrip.boundaryTicks(bands, domain: domain)),
            showLine: false, tickLength: 2)
        xs.draw(in: canvas, plot: axisRect, side: .bottom)
    }
}
