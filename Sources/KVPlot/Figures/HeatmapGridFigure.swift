import Foundation

/// One small multiple of a heatmap grid.
public struct HeatmapGridPanel: Sendable {
    /// Panel title, e.g. "L12 H3".
    public var title: String
    /// `rows * cols` values, row-major.
    public var matrix: [Float]
    public init(title: String, matrix: [Float]) { self.title = title; self.matrix = matrix }
}

/// Builds the `--grid` heatmap (FIGURES.md §2.1): layers × heads small multiples sharing one
/// normalisation and one colour bar; only the outer panels carry tick labels.
public struct HeatmapGridFigure: Sendable {
    public var panels: [HeatmapGridPanel]
    public var gridColumns: Int
    public var rows: Int
    public var cols: Int
    public var causal: Bool
    public var bands: [ModalityBand]
    public var normalization: Normalization
    public var colorMap: ColorMap
    public var title: String
    public var subtitle: [String]
    public var colorBarLabel: String
    public var panelSize: Double
    public var pooling: HeatmapData.Pooling
    public var scale: Double
    /// Absolute position of the first row / column (window traces, crops).
    public var rowStart: Int = 0
    public var colStart: Int = 0

    /// - Parameters:
    ///   - panels: row-major small multiples (e.g. layer-major, head-minor).
    ///   - gridColumns: panels per grid row (e.g. the number of heads).
    ///   - rows, cols: the shape of every matrix.
    ///   - panelSize: side of one panel's map in points.
    public init(
        panels: [HeatmapGridPanel], gridColumns: Int, rows: Int, cols: Int, causal: Bool = true, bands: [ModalityBand] = [],
        normalization: Normalization = .log(1e-4 ... 1), colorMap: ColorMap = .viridis, title: String, subtitle: [String] = [],
        colorBarLabel: String? = nil, panelSize: Double = 90, pooling: HeatmapData.Pooling = .max, scale: Double = 2
    ) {
        self.panels = panels; self.gridColumns = max(1, gridColumns); self.rows = rows; self.cols = cols; self.causal = causal
        self.bands = bands; self.normalization = normalization; self.colorMap = colorMap; self.title = title
        self.subtitle = subtitle; self.colorBarLabel = colorBarLabel ?? ("attention weight" + (normalization.isLog ? ", log" : ""))
        self.panelSize = panelSize; self.pooling = pooling; self.scale = scale
    }

    public func build() -> Figure {
        let gridRows = (panels.count + gridColumns - 1) / gridColumns
        let k = HeatmapData.poolFactor(rows: rows, cols: cols, limit: max(1, Int(panelSize * scale)))
        var sub = subtitle
        if k > 1 { sub.append(pooling == .max ? "max-pooled \(k)×\(k)" : "mean-pooled \(k)×\(k) (causal entries)") }
        let header = Figure.headerHeight(subtitleLines: sub.count, hasTitle: !title.isEmpty)
        let bandPad = bands.isEmpty ? 0.0 : 7
        let left = 52.0 + bandPad, top = 12.0 + bandPad, bottom = 30.0, gap = 14.0 + bandPad, cbW = 62.0
        // Non-square maps (window traces) keep square cells: the panel shrinks along the short side.
        let aspect = Double(max(rows, 1)) / Double(max(cols, 1))
        let panelW = panelSize * min(1, 1 / aspect), panelH = panelSize * min(1, aspect)
        let cell = panelW + gap, cellH = panelH + gap
        // Wide enough for the title block (estimated at 0.62 em per character).
        let textW = max(Double(title.count) * 11 * 0.62, Double(sub.map(\.count).max() ?? 0) * 9 * 0.55) + 16
        let size = Size(max(left + Double(gridColumns) * cell + cbW + 10, textW), header + top + Double(gridRows) * (cellH + 10) + bottom)
        var fig = Figure(size: size, title: title, subtitle: sub)
        for (i, p) in panels.enumerated() {
            let r = i / gridColumns, c = i % gridColumns
            var data = HeatmapData(values: p.matrix, rows: rows, cols: cols, rowStart: rowStart, colStart: colStart)
            if k > 1 { data = data.pooled(k, mode: pooling, causal: causal) }
            let isLeft = c == 0, isBottom = r == gridRows - 1 || i + gridColumns >= panels.count
            let x = left + Double(c) * cell, y = header + top + Double(r) * (cellH + 10)
            let chart = HeatmapChart(
                data: data, normalization: normalization, colorMap: colorMap, mask: causal ? .causal : .none, bands: bands,
                separators: true, xLabel: isBottom ? "key" : nil, yLabel: isLeft ? "query" : nil, insets: EdgeInsets(),
                squareCells: true, showXTickLabels: isBottom, showYTickLabels: isLeft, bandWidth: 5, panelTitle: p.title)
            fig.add(chart, in: Rect(x: x, y: y, width: panelW, height: panelH))
        }
        let bar = ColorBar(normalization: normalization, colorMap: colorMap, label: colorBarLabel)
        let barH = min(Double(gridRows) * (cellH + 10) - gap - 10, 260)
        fig.add(bar, in: Rect(x: left + Double(gridColumns) * cell + 4, y: header + top, width: cbW, height: max(barH, 80)))
        return fig
    }
}
