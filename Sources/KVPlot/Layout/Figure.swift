import Foundation

/// A chart placed at a fixed frame of a figure.
public struct Panel: Sendable {
    public var frame: Rect
    public var chart: any Chart
    public init(frame: Rect, chart: any Chart) { self.frame = frame; self.chart = chart }
}

/// Free text placed on a figure (notes, row labels).
public struct TextItemChart: Chart, Hashable {
    public var text: String
    public var style: TextStyle
    public var anchor: Anchor
    public var angle: Double
    public init(_ text: String, style: TextStyle = .panelTitle, anchor: Anchor = .left, angle: Double = 0) {
        self.text = text; self.style = style; self.anchor = anchor; self.angle = angle
    }
    /// Draws at the frame's origin.
    public func draw(in canvas: some Canvas, frame: Rect) {
        canvas.text(text, at: frame.origin, style: style, anchor: anchor, angle: angle)
    }
}

/// A complete figure: a page size in points, a title block and panels. A pure value; drawing
/// it into any canvas gives the same commands for the same inputs.
public struct Figure: Sendable {
    public var size: Size
    /// Title, 11 pt bold, centred at the top.
    public var title: String
    /// Subtitle lines (stated transforms, budgets…), 8 pt, under the title.
    public var subtitle: [String]
    public var panels: [Panel]
    public var background: RGB

    public init(size: Size, title: String, subtitle: [String] = [], panels: [Panel] = [], background: RGB = Palette.background) {
        // Whole points, so that at the default scale the page is a whole number of pixels.
        self.size = Size(size.width.rounded(.up), size.height.rounded(.up)); self.title = title; self.subtitle = subtitle;
        self.panels = panels; self.background = background
    }

    /// Height of the title block for a number of subtitle lines.
    public static func headerHeight(subtitleLines: Int, hasTitle: Bool = true) -> Double {
        (hasTitle ? 8 + 11 + 3 : 6) + Double(subtitleLines) * 10 + 6
    }

    /// The height of this figure's title block.
    public var headerHeight: Double { Self.headerHeight(subtitleLines: subtitle.count, hasTitle: !title.isEmpty) }

    /// Side margin kept clear of title-block text, in points.
    public static let textMargin = 6.0

    /// `style`, shrunk (down to 5 pt) when `line` would be wider than the page less the margins,
    /// so a title block line is never clipped at the page edges. Builders size pages with
    /// ``textWidth(_:style:)`` so this is a safety net, not the layout.
    func fitting(_ line: String, _ style: TextStyle, in canvas: some Canvas) -> TextStyle {
        let room = size.width - 2 * Self.textMargin
        let w = canvas.measure(line, style: style).width
        guard w > room, w > 0 else { return style }
        var s = style
        s.size = max(5, (style.size * room / w * 100).rounded(.down) / 100)
        return s
    }

    /// An upper estimate of the width of `text` in DejaVu Sans at `style` (0.62 em per character,
    /// bold 0.68 em), for sizing a page before any canvas exists.
    public static func textWidth(_ text: String, style: TextStyle) -> Double {
        Double(text.unicodeScalars.count) * style.size * (style.weight == .bold ? 0.68 : 0.62)
    }

    /// The narrowest page width that shows `title` and every `subtitle` line whole, capped at
    /// ``maximumTitleBlockWidth`` (longer lines are shrunk to fit when drawn).
    public static func titleBlockWidth(title: String, subtitle: [String]) -> Double {
        let widths = [textWidth(title, style: .title)] + subtitle.map { textWidth($0, style: .subtitle) }
        return min((widths.max() ?? 0) + 2 * textMargin + 4, maximumTitleBlockWidth)
    }

    /// The widest a title block may make a page, in points.
    public static let maximumTitleBlockWidth = 1000.0

    /// Adds a panel.
    public mutating func add(_ chart: any Chart, in frame: Rect) { panels.append(Panel(frame: frame, chart: chart)) }

    /// Draws the background, title block and every panel in order.
    public func draw(in canvas: some Canvas) {
        canvas.fill(Rect(origin: Point(0, 0), size: size), background)
        var y = 8.0
        if !title.isEmpty {
            canvas.text(title, at: Point(size.width / 2, y), style: fitting(title, .title, in: canvas), anchor: .top, angle: 0)
            y += 11 + 3
        }
        for line in subtitle {
            canvas.text(line, at: Point(size.width / 2, y), style: fitting(line, .subtitle, in: canvas), anchor: .top, angle: 0)
            y += 10
        }
        for p in panels { p.chart.draw(in: canvas, frame: p.frame) }
    }
}

/// A small-multiple (facet) grid: equal cells with gaps, row-major.
public struct FacetGrid: Sendable, Hashable {
    public var rows: Int
    public var cols: Int
    public var area: Rect
    public var hGap: Double
    public var vGap: Double

    public init(rows: Int, cols: Int, area: Rect, hGap: Double = 8, vGap: Double = 8) {
        self.rows = max(1, rows); self.cols = max(1, cols); self.area = area; self.hGap = hGap; self.vGap = vGap
    }

    /// Cell size.
    public var cellSize: Size {
        Size((area.width - Double(cols - 1) * hGap) / Double(cols), (area.height - Double(rows - 1) * vGap) / Double(rows))
    }

    /// The frame of cell (`row`, `col`).
    public func frame(row: Int, col: Int) -> Rect {
        let c = cellSize
        return Rect(
            x: area.minX + Double(col) * (c.width + hGap), y: area.minY + Double(row) * (c.height + vGap), width: c.width, height: c.height)
    }

    /// Whether a cell is on the outer left column / bottom row (only those get tick labels).
    public func isLeft(col: Int) -> Bool { col == 0 }
    public func isBottom(row: Int) -> Bool { row == rows - 1 }
}
