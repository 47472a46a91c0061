import Foundation

/// One policy's retention grid: rows (layers or KV heads) × token positions.
public struct RetentionPanel: Sendable, Hashable {
    /// Panel title, e.g. "h2o  C=256  C_act=262  fidelity=paper".
    public var title: String
    /// `rows * tokens` kept fractions in 0…1, row-major (row 0 = layer 0, top). NaN = not recorded.
    public var kept: [Double]
    public var rows: Int
    /// Positions merged in at least one head (orange ticks above the grid).
    public var merged: [Int]

    public init(title: String, kept: [Double], rows: Int, merged: [Int] = []) {
        self.title = title; self.kept = kept; self.rows = rows; self.merged = merged
    }
}

/// Builds the retention map: per policy a [layers × tokens] grid of the kept
/// fraction (cividis, linear 0–1, one shared colour bar), a modality strip along the top, a
/// vertical line at the prefill length `P`, policies stacked with a shared x axis.
public struct RetentionFigure: Sendable {
    public var panels: [RetentionPanel]
    public var tokens: Int
    public var prefillLength: Int?
    public var bands: [ModalityBand]
    public var title: String
    public var subtitle: [String]
    public var rowLabel: String
    public var colorMap: ColorMap
    public var colorBarLabel: String
    public var size: Size?

    /// - Parameters:
    ///   - panels: one per policy, top to bottom.
    ///   - tokens: positions `0 ..< tokens` on x.
    ///   - prefillLength: `P`, drawn as a vertical line (nil = none).
    ///   - bands: modality spans for the top strip.
    ///   - rowLabel: "layer" (or "KV head").
    ///   - colorMap: default cividis.
    ///   - size: page size; nil = 620 wide (wider for a long title block), height from the number of panels.
    public init(
        panels: [RetentionPanel], tokens: Int, prefillLength: Int? = nil, bands: [ModalityBand] = [], title: String,
        subtitle: [String] = [], rowLabel: String = "layer", colorMap: ColorMap = .cividis,
        colorBarLabel: String = "kept fraction (of KV heads)", size: Size? = nil
    ) {
        self.panels = panels; self.tokens = tokens; self.prefillLength = prefillLength; self.bands = bands
        self.title = title; self.subtitle = subtitle; self.rowLabel = rowLabel; self.colorMap = colorMap
        self.colorBarLabel = colorBarLabel; self.size = size
    }

    public func build() -> Figure {
        let panelH = 110.0
        let header = Figure.headerHeight(subtitleLines: subtitle.count, hasTitle: !title.isEmpty)
        let size =
            self.size
            ?? Size(
                max(620, Figure.titleBlockWidth(title: title, subtitle: subtitle)),
                header + Double(panels.count) * panelH + 50 + (panels.contains { !$0.merged.isEmpty } ? 6 * Double(panels.count) : 0))
        var fig = Figure(size: size, title: title, subtitle: subtitle)
        let cbW = 62.0
        let area = Rect(x: 4, y: header, width: size.width - 8 - cbW - 10, height: size.height - header - 40)
        let grid = FacetGrid(rows: max(1, panels.count), cols: 1, area: area, hGap: 0, vGap: 0)
        let norm = Normalization.linear(0 ... 1)
        var plots: [Rect] = []
        for (i, p) in panels.enumerated() {
            var frame = grid.frame(row: i, col: 0)
            let first = i == 0, last = i == panels.count - 1
            if last { frame.size.height += 40 }
            if first { frame.origin.y -= 10; frame.size.height += 10 }
            // Rows are whole layers (or heads): integer ticks only, every row while labels stay
            // 10 pt apart on the ~70 pt map (4 layers → 0, 1, 2, 3; 32 layers → every 5th).
            let rowStep = max(1, Int((Double(p.rows) * 10 / 70).rounded(.up)))
            let rowsTicks = stride(from: 0, to: p.rows, by: rowStep).map { Tick(Double($0) + 0.5, String($0)) }
            // Band labels only above the first panel; later panels' titles sit where they would be.
            let panelBands = first ? bands : bands.map { ModalityBand($0.range, kind: $0.kind, isPseudo: $0.isPseudo) }
            let chart = HeatmapChart(
                data: HeatmapData(values: p.kept, rows: p.rows, cols: tokens), normalization: norm, colorMap: colorMap,
                mask: .none, bands: panelBands, separators: false, xLabel: last ? "position" : nil, yLabel: rowLabel,
                insets: EdgeInsets(top: (first ? 34 : 24) + (p.merged.isEmpty ? 0 : 6), left: 48, bottom: last ? 40 : 4, right: 4),
                squareCells: false,
                showXTickLabels: last, panelTitle: nil, bandAxes: .top,
                columnLines: prefillLength.map { [$0] } ?? [], columnTicks: p.merged,
                xTicks: .auto(target: 8), yTicks: .explicit(rowsTicks))
            fig.add(chart, in: frame)
            let plot = chart.plotRect(in: frame)
            plots.append(plot)
            let titleY = plot.minY - (first ? 19 : 9) - (p.merged.isEmpty ? 0 : 6)
            fig.add(
                TextItemChart(p.title, style: TextStyle(size: 8, weight: .bold), anchor: .bottomLeft),
                in: Rect(x: plot.minX, y: titleY, width: 0, height: 0))
            if let P = prefillLength, first, P > 0, P <= tokens {
                let xx = chart.x(Double(P), plot: plot)
                fig.add(
                    TextItemChart("P = \(P)", style: TextStyle(size: 7, weight: .bold), anchor: .bottom),
                    in: Rect(x: xx, y: titleY, width: 0, height: 0))
            }
        }
        if let first = plots.first, let last = plots.last {
            let bar = ColorBar(normalization: norm, colorMap: colorMap, label: colorBarLabel)
            fig.add(bar, in: Rect(x: first.maxX + 12, y: first.minY, width: cbW, height: last.maxY - first.minY))
        }
        return fig
    }
}
