import Foundation

/// One image of a patch-grid figure.
public struct PatchImage: Sendable, Hashable {
    /// Column title, e.g. "image 1 (24×24)" or "pseudo-image (text tokens)".
    public var title: String
    public var rows: Int
    public var cols: Int
    /// Optional grey levels (0…1, row-major) drawn beside the first policy's grid.
    public var levels: [Double]?
    public init(title: String, rows: Int, cols: Int, levels: [Double]? = nil) {
        self.title = title; self.rows = rows; self.cols = cols; self.levels = levels
    }
}

/// Builds the per-image patch-grid retention figure: rows = policies,
/// columns = images; each cell is the fraction of (layer, KV head) pairs that keep the patch
/// (cividis, linear 0–1, colour bar "kept fraction"). Images with grey levels get their picture
/// in an extra column.
public struct PatchGridFigure: Sendable {
    public var policies: [String]
    /// The style of each policy (its colour labels the row); default: hashed from the label.
    public var styles: [PolicyStyle]?
    public var images: [PatchImage]
    /// `kept[policy][image]`: `rows * cols` fractions, row-major.
    public var kept: [[[Double]]]
    public var title: String
    public var subtitle: [String]
    public var colorMap: ColorMap
    public var colorBarLabel: String
    public var cellSize: Double

    /// - Parameters:
    ///   - policies: row labels, top to bottom.
    ///   - images: columns, left to right.
    ///   - kept: `kept[p][i]` has `images[i].rows * images[i].cols` values in 0…1.
    ///   - cellSize: panel side in points.
    public init(
        policies: [String], images: [PatchImage], kept: [[[Double]]], title: String, subtitle: [String] = [],
        colorMap: ColorMap = .cividis, colorBarLabel: String = "kept fraction", cellSize: Double = 110
    ) {
        precondition(kept.count == policies.count && kept.allSatisfy { $0.count == images.count }, "PatchGridFigure: kept shape")
        self.policies = policies; self.images = images; self.kept = kept; self.title = title; self.subtitle = subtitle
        self.colorMap = colorMap; self.colorBarLabel = colorBarLabel; self.cellSize = cellSize
    }

    public func build() -> Figure {
        let header = Figure.headerHeight(subtitleLines: subtitle.count, hasTitle: !title.isEmpty)
        let baseLabelW = 74.0, gap = 10.0, cbW = 62.0, colTitle = 12.0
        let pictures = images.filter { $0.levels != nil }.count
        let nCols = images.count + pictures
        let contentW = baseLabelW + Double(nCols) * (cellSize + gap) + cbW + 16
        let width = max(contentW, 240, Figure.titleBlockWidth(title: title, subtitle: subtitle))
        // Centre the panels when the title block is the wider.
        let labelW = baseLabelW + (width - contentW) / 2
        // Panels as tall as the tallest grid needs (square cells): a 1 × 24 strip of patches gets
        // a short row, not a square of blank page.
        let panelH = Self.panelHeight(images, cellSize: cellSize)
        let rowH = panelH + gap
        let barH = max(min(Double(policies.count) * rowH - gap, 220), 60)
        let height = header + colTitle + max(Double(policies.count) * rowH - gap, barH) + 6
        var fig = Figure(size: Size(width, height), title: title, subtitle: subtitle)
        let norm = Normalization.linear(0 ... 1)
        let top = header + colTitle
        for (pi, policy) in policies.enumerated() {
            let y = top + Double(pi) * rowH
            let style = styles?[pi] ?? PolicyStyle.of(policy)
            fig.add(
                TextItemChart(
                    policy, style: TextStyle(size: 8, weight: .bold, color: style.color == .black ? .black : style.color), anchor: .right),
                in: Rect(x: labelW - 6, y: y + panelH / 2, width: 0, height: 0))
            var col = 0
            for (ii, img) in images.enumerated() {
                let x = labelW + Double(col) * (cellSize + gap)
                let frame = Rect(x: x, y: y, width: cellSize, height: panelH)
                let chart = HeatmapChart(
                    data: HeatmapData(values: kept[pi][ii], rows: img.rows, cols: img.cols), normalization: norm,
                    colorMap: colorMap, mask: .none, separators: false, xLabel: nil, yLabel: nil,
                    insets: EdgeInsets(), squareCells: true, showXTickLabels: false, showYTickLabels: false,
                    bandAxes: .none, xTicks: TickSpec.none, yTicks: TickSpec.none)
                fig.add(chart, in: frame)
                if pi == 0 {
                    fig.add(
                        TextItemChart(img.title, style: .panelTitle, anchor: .bottom),
                        in: Rect(x: x + chart.plotRect(in: frame).width / 2, y: top - 3, width: 0, height: 0))
                }
                col += 1
                if let levels = img.levels {
                    let px = labelW + Double(col) * (cellSize + gap)
                    if pi == 0 {
                        fig.add(
                            ImageChart(image: ImageChart.grey(levels, rows: img.rows, cols: img.cols)),
                            in: Rect(x: px, y: y, width: cellSize, height: panelH))
                        fig.add(
                            TextItemChart("grey levels", style: .panelTitle, anchor: .bottom),
                            in: Rect(x: px + cellSize / 2, y: top - 3, width: 0, height: 0))
                    }
                    col += 1
                }
            }
        }
        let bar = ColorBar(normalization: norm, colorMap: colorMap, label: colorBarLabel)
        fig.add(bar, in: Rect(x: labelW + Double(nCols) * (cellSize + gap) + 4, y: top, width: cbW, height: barH))
        return fig
    }

    /// The height of a row of panels `cellSize` wide: enough for the tallest grid with square
    /// cells, at least 8 pt.
    static func panelHeight(_ images: [PatchImage], cellSize: Double) -> Double {
        let aspect = images.map { Double($0.rows) / Double(max($0.cols, 1)) }.max() ?? 1
        return max(8, cellSize * min(1, aspect))
    }
}
