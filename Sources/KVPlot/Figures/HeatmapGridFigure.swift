import Foundation

/// One small multiple of a heatmap grid.
public struct HeatmapGridPanel: Sendable {
    /// Panel title, e.g. "L12 H3".
    public var title: String
    /// `rows * cols` values, row-major.
    public var matrix: [Float]
    public init(title: String, matrix: [Float]) { self.title = title; self.matrix = matrix }
}

/// Builds the `--grid` heatmap: layers × heads small multiples sharing one
/// normalisation and one colour bar; only the outer panels carry tick labels.
public struct HeatmapGridFigure: Sendable {
    public var panels: [HeatmapGridPanel]
    public var gridColumns: Int
    public var rows: Int
    public var cols: Int
    /// The mask, bands, colours and pooling of every panel (as the single heatmap's).
    public var look: HeatmapLook
    public var title: String
    public var subtitle: [String]
    public var panelSize: Double
    public var scale: Double
    /// Absolute position of the first row / column (window traces, crops).
    public var rowStart: Int = 0
    public var colStart: Int = 0

    /// - Parameters:
    ///   - panels: row-major small multiples (e.g. layer-major, head-minor).
    ///   - gridColumns: panels per grid row; nil chooses the shape from the number of panels and
    ///     their aspect (``gridShape(count:panelAspect:)``: 8 square panels → 2 × 4, 32 → 4 × 8).
    ///   - rows, cols: the shape of every matrix.
    ///   - panelSize: side of one panel's map in points.
    public init(
        panels: [HeatmapGridPanel], gridColumns: Int? = nil, rows: Int, cols: Int, causal: Bool = true, bands: [ModalityBand] = [],
        normalization: Normalization = .log(1e-4 ... 1), colorMap: ColorMap = .viridis, title: String, subtitle: [String] = [],
        colorBarLabel: String? = nil, panelSize: Double = 90, pooling: HeatmapData.Pooling = .max, scale: Double = 2
    ) {
        self.panels = panels
        // The shape is chosen on each panel's footprint: its map plus the gaps, band and title around it.
        let shape = Self.panelShape(rows: rows, cols: cols, panelSize: panelSize)
        let footprint = (shape.height + 31) / (shape.width + 21)
        self.gridColumns = max(1, gridColumns ?? Self.gridShape(count: panels.count, panelAspect: footprint).cols); self.rows = rows;
        self.cols = cols
        self.look = HeatmapLook(
            causal: causal, bands: bands, normalization: normalization, colorMap: colorMap, colorBarLabel: colorBarLabel,
            pooling: pooling)
        self.title = title; self.subtitle = subtitle; self.panelSize = panelSize; self.scale = scale
    }

    /// Shortest a panel's map may be, in points: below this, rows are stretched (cells drawn
    /// taller than wide, and the subtitle says so) rather than shrunk into a sliver thinner than
    /// the modality band.
    public static let minimumPanelHeight = 40.0

    /// A panel's map size for matrices of `rows × cols`: square cells within `panelSize`, the
    /// height raised to ``minimumPanelHeight`` for wide maps (few recorded rows). `stretch` is
    /// the factor by which cells are taller than wide (1 = square).
    public static func panelShape(rows: Int, cols: Int, panelSize: Double) -> (
        width: Double, height: Double, aspect: Double, stretch: Double
    ) {
        let aspect = Double(max(rows, 1)) / Double(max(cols, 1))
        let w = panelSize * min(1, 1 / aspect), square = panelSize * min(1, aspect)
        let h = max(square, min(minimumPanelHeight, panelSize))
        return (w, h, h / w, h / square)
    }

    /// The grid (rows × columns) for `count` panels of height/width `panelAspect`: the shape whose
    /// page is closest to twice as wide as tall, preferring shapes without empty cells. Square
    /// panels: 4 → 1 × 4, 8 → 2 × 4, 9 → 3 × 3, 16 → 2 × 8, 32 → 4 × 8; wide panels stack in more rows.
    public static func gridShape(count: Int, panelAspect: Double) -> (rows: Int, cols: Int) {
        guard count > 1 else { return (1, 1) }
        var best = (rows: 1, cols: count), bestScore = Double.infinity
        for r in 1 ... count {
            let c = (count + r - 1) / r
            guard (r - 1) * c < count else { continue }  // no empty grid row
            let pageAspect = Double(c) / (Double(r) * max(panelAspect, 1e-3))
            let score = abs(log(pageAspect / 2)) + (r * c > count ? 0.75 : 0)
            if score < bestScore - 1e-9 { best = (r, c); bestScore = score }
        }
        return best
    }

    public func build() -> Figure {
        let gridRows = (panels.count + gridColumns - 1) / gridColumns
        let shape = Self.panelShape(rows: rows, cols: cols, panelSize: panelSize)
        let panelW = shape.width, panelH = shape.height
        let k = HeatmapData.poolFactor(rows: rows, cols: cols, limit: max(1, Int(max(panelW, panelH) * scale)))
        var sub = subtitle
        if let note = look.poolNote(k) { sub.append(note) }
        if shape.stretch > 1.05 { sub.append(HeatmapData.stretchNote(shape.stretch)) }
        let header = Figure.headerHeight(subtitleLines: sub.count, hasTitle: !title.isEmpty)
        let bandPad = look.bands.isEmpty ? 0.0 : 7
        let left = 52.0 + bandPad, top = 12.0 + bandPad, bottom = 30.0, gap = 14.0 + bandPad, cbW = 62.0
        let cell = panelW + gap, cellH = panelH + gap
        let gridW = left + Double(gridColumns) * cell + cbW + 10
        let gridH = Double(gridRows) * (cellH + 10) - gap - 10
        let barH = min(max(gridH, 80), 260)
        let size = Size(
            max(gridW, Figure.titleBlockWidth(title: title, subtitle: sub)),
            header + top + max(gridH + bottom, barH + 10))
        // Centre the grid when the title block is the wider.
        let dx = (size.width - gridW) / 2
        var fig = Figure(size: size, title: title, subtitle: sub)
        for (i, p) in panels.enumerated() {
            let r = i / gridColumns, c = i % gridColumns
            let data = look.pooled(HeatmapData(values: p.matrix, rows: rows, cols: cols, rowStart: rowStart, colStart: colStart), by: k)
            let isLeft = c == 0, isBottom = r == gridRows - 1 || i + gridColumns >= panels.count
            let x = dx + left + Double(c) * cell, y = header + top + Double(r) * (cellH + 10)
            let chart = HeatmapChart(
                data: data, normalization: look.normalization, colorMap: look.colorMap, mask: look.mask, bands: look.bands,
                separators: true, xLabel: isBottom ? "key position" : nil, yLabel: isLeft ? "query" : nil, insets: EdgeInsets(),
                squareCells: shape.stretch <= 1.05, showXTickLabels: isBottom, showYTickLabels: isLeft, bandWidth: 5, panelTitle: p.title)
            fig.add(chart, in: Rect(x: x, y: y, width: panelW, height: panelH))
        }
        fig.add(look.colorBar, in: Rect(x: dx + left + Double(gridColumns) * cell + 4, y: header + top, width: cbW, height: barH))
        return fig
    }
}
