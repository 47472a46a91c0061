import Foundation

/// A vertical colour bar: the colour map as one image, ticks outside on the right, and a
/// rotated label stating the quantity and its scale (e.g. "attention weight, log").
public struct ColorBar: Chart, Hashable {
    public var normalization: Normalization
    public var colorMap: ColorMap
    public var label: String
    /// Bar width in points.
    public var barWidth: Double
    /// Ticks; `.auto` gives decades for log normalisations.
    public var ticks: TickSpec

    public init(
        normalization: Normalization, colorMap: ColorMap, label: String, barWidth: Double = 10,
        ticks: TickSpec = .auto(target: 5)
    ) {
        self.normalization = normalization; self.colorMap = colorMap; self.label = label
        self.barWidth = barWidth; self.ticks = ticks
    }

    /// The bar rectangle inside `frame` (left-aligned, full height).
    public func barRect(in frame: Rect) -> Rect {
        Rect(x: frame.minX, y: frame.minY, width: barWidth, height: frame.height)
    }

    /// The width the bar, its tick labels and its label need, measured on `canvas`.
    public func requiredWidth(in canvas: some Canvas) -> Double {
        let axis = Axis(scale: normalization.scale, ticks: ticks)
        let w = axis.resolvedTicks.map { canvas.measure($0.label, style: .tick).width }.max() ?? 0
        return barWidth + 3.5 + 2 + w + 3 + TextStyle.axisLabel.size + 4
    }

    /// The gradient image: 1 × 256, top = high.
    public var gradient: PixelImage {
        PixelImage(width: 1, height: 256, pixels: Array(colorMap.table.reversed()))
    }

    public func draw(in canvas: some Canvas, frame: Rect) {
        let bar = barRect(in: frame)
        canvas.image(gradient, in: bar)
        canvas.stroke(.rect(bar), .init(.darkGray, width: 0.5))
        let axis = Axis(scale: normalization.scale, label: label, ticks: ticks, showLine: false)
        axis.draw(in: canvas, plot: bar, side: .right)
    }
}

/// How a legend entry's key is drawn.
public enum LegendKey: Sendable, Hashable {
    /// A line sample with optional dash and marker.
    case line(RGB, dash: [Double], marker: MarkerShape)
    /// A filled square.
    case swatch(RGB)
    /// A filled square with a diagonal hatch (pseudo-images).
    case hatchedSwatch(RGB)
    /// A short vertical tick of 0.6 pt, as the merge view marks kept positions.
    case tick(RGB)
    /// A marker alone, no line (marks drawn without a line, e.g. the merge view's crosses).
    case marker(RGB, MarkerShape, size: Double)

    /// The key of a policy style.
    public static func policy(_ s: PolicyStyle) -> LegendKey { .line(s.color, dash: s.dash, marker: s.marker) }
}

/// One legend entry.
public struct LegendEntry: Sendable, Hashable {
    public var label: String
    public var key: LegendKey
    public init(_ label: String, key: LegendKey) { self.label = label; self.key = key }
}

/// A legend: entries in the given order, in one column or wrapped in rows.
public struct Legend: Chart, Hashable {
    public enum Layout: String, Sendable, Hashable { case column, rows }
    public var entries: [LegendEntry]
    public var layout: Layout
    public var title: String?
    static let keyWidth = 20.0
    static let rowHeight = 11.0

    public init(_ entries: [LegendEntry], layout: Layout = .column, title: String? = nil) {
        self.entries = entries; self.layout = layout; self.title = title
    }

    /// The width of the widest entry (column layout).
    public func columnWidth(in canvas: some Canvas) -> Double {
        let w = entries.map { canvas.measure($0.label, style: .legend).width }.max() ?? 0
        let t = title.map { canvas.measure($0, style: .legend).width } ?? 0
        return max(Self.keyWidth + 4 + w, t)
    }

    /// The size needed when laid out in `width` points.
    public func size(in canvas: some Canvas, width: Double) -> Size {
        let titleH = title == nil ? 0 : Self.rowHeight
        switch layout {
        case .column: return Size(columnWidth(in: canvas), titleH + Double(entries.count) * Self.rowHeight)
        case .rows:
            let rows = rowLayout(in: canvas, width: width).last.map { $0.row + 1 } ?? 0
            return Size(width, titleH + Double(rows) * Self.rowHeight)
        }
    }

    func rowLayout(in canvas: some Canvas, width: Double) -> [(row: Int, x: Double)] {
        var out: [(Int, Double)] = []
        var row = 0, x = 0.0
        for e in entries {
            let w = Self.keyWidth + 4 + canvas.measure(e.label, style: .legend).width + 10
            if x > 0 && x + w > width { row += 1; x = 0 }
            out.append((row, x))
            x += w
        }
        return out
    }

    public func draw(in canvas: some Canvas, frame: Rect) {
        var y0 = frame.minY
        if let title {
            canvas.text(title, at: Point(frame.minX, y0 + Self.rowHeight / 2), style: TextStyle(size: 8, weight: .bold), anchor: .left)
            y0 += Self.rowHeight
        }
        let positions: [(row: Int, x: Double)]
        switch layout {
        case .column: positions = entries.indices.map { ($0, 0) }
        case .rows: positions = rowLayout(in: canvas, width: frame.width)
        }
        for (e, pos) in zip(entries, positions) {
            let cy = y0 + (Double(pos.row) + 0.5) * Self.rowHeight
            let x = frame.minX + pos.x
            Self.drawKey(e.key, in: canvas, x: x, cy: cy)
            canvas.text(e.label, at: Point(x + Self.keyWidth + 4, cy), style: .legend, anchor: .left)
        }
    }

    static func drawKey(_ key: LegendKey, in canvas: some Canvas, x: Double, cy: Double) {
        switch key {
        case let .line(c, dash, marker):
            canvas.stroke(.line(from: Point(x, cy), to: Point(x + keyWidth, cy)), StrokeStyle(c, width: 1.5, dash: dash))
            Markers.draw(marker, at: Point(x + keyWidth / 2, cy), color: c, in: canvas)
        case let .swatch(c):
            let r = Rect(x: x + keyWidth / 2 - 4, y: cy - 4, width: 8, height: 8)
            canvas.fill(r, c)
            // Light swatches (dropped #E5E5E5) would vanish on white without an outline.
            canvas.stroke(.rect(r), StrokeStyle(RGB(hex: 0xB3B3B3), width: 0.5))
        case let .marker(c, shape, size):
            Markers.draw(shape, at: Point(x + keyWidth / 2, cy), color: c, size: size, in: canvas)
        case let .tick(c):
            var p = Path()
            for dx in [-4.0, -1.5, 1.0, 3.5] {
                p.move(to: Point(x + keyWidth / 2 + dx, cy - 2.5)); p.line(to: Point(x + keyWidth / 2 + dx, cy + 2.5))
            }
            canvas.stroke(p, StrokeStyle(c, width: 0.6))
        case let .hatchedSwatch(c):
            let r = Rect(x: x + keyWidth / 2 - 4, y: cy - 4, width: 8, height: 8)
            canvas.fill(r, c)
            Hatch.draw(in: canvas, rect: r)
        }
    }
}

/// Data markers (circle, square, triangle, diamond).
public enum Markers {
    /// The path of a marker of `size` points centred at `p`.
    public static func path(_ shape: MarkerShape, at p: Point, size: Double = 4.5) -> Path {
        let h = size / 2
        switch shape {
        case .none: return Path()
        case .circle: return .circle(center: p, radius: h)
        case .square: return .rect(Rect(x: p.x - h * 0.9, y: p.y - h * 0.9, width: h * 1.8, height: h * 1.8))
        case .triangle:
            return .polygon([Point(p.x, p.y - h * 1.15), Point(p.x + h * 1.1, p.y + h * 0.8), Point(p.x - h * 1.1, p.y + h * 0.8)])
        case .diamond: return .polygon([Point(p.x, p.y - h * 1.2), Point(p.x + h, p.y), Point(p.x, p.y + h * 1.2), Point(p.x - h, p.y)])
        case .cross:
            var path = Path.line(from: Point(p.x - h, p.y - h), to: Point(p.x + h, p.y + h))
            path.append(.line(from: Point(p.x - h, p.y + h), to: Point(p.x + h, p.y - h)))
            return path
        }
    }

    /// Draws a marker. Circles (no merge) are filled; the merge shapes (square, triangle,
    /// diamond) are open outlines of 1 pt drawn 1.5× larger, so two lines with equal values stay
    /// visible: an open square rings the filled circle at the same point. Crosses are stroked.
    public static func draw(_ shape: MarkerShape, at p: Point, color: RGB, size: Double = 4.5, in canvas: some Canvas) {
        switch shape {
        case .none: return
        case .cross: canvas.stroke(path(shape, at: p, size: size), StrokeStyle(color, width: 1))
        case .circle: canvas.fill(path(shape, at: p, size: size), color)
        case .square, .triangle, .diamond:
            canvas.stroke(path(shape, at: p, size: size * 1.5), StrokeStyle(color, width: 1))
        }
    }
}

/// The diagonal hatch that marks pseudo-image spans.
public enum Hatch {
    /// Draws white diagonal lines every `spacing` points, clipped to `rect`.
    public static func draw(in canvas: some Canvas, rect: Rect, spacing: Double = 3) {
        canvas.pushClip(rect)
        var path = Path()
        var x = rect.minX - rect.height
        while x < rect.maxX {
            path.move(to: Point(x, rect.maxY))
            path.line(to: Point(x + rect.height, rect.minY))
            x += spacing
        }
        canvas.stroke(path, StrokeStyle(color: RGBA(.white, alpha: 0.8), width: 0.6))
        canvas.popClip()
    }
}
