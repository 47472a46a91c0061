import Foundation

/// One policy's merge-flow matrix: `values[s][t]` ≥ 0 is how much of source group `s` (evicted
/// tokens of text, image 0, …) went into target `t` (kept tokens of a group, or dropped).
public struct MergeFlowPanel: Sendable, Hashable {
    public var title: String
    /// The colour of the title (the policy's); default: hashed from the title.
    public var style: PolicyStyle?
    /// `sources × targets`.
    public var values: [[Double]]

    public init(title: String, style: PolicyStyle? = nil, values: [[Double]]) {
        self.title = title; self.style = style; self.values = values
    }

    /// Row `s` as shares of its total (nil when the row is all zero: nothing of that group was evicted).
    public func shares(_ s: Int) -> [Double]? {
        let total = values[s].reduce(0, +)
        return total > 0 ? values[s].map { $0 / total } : nil
    }
}

/// The "where does image information go?" figure (`kvscope render merge-flow`): per policy a
/// matrix, rows = source groups of evicted tokens, columns = target groups (kept tokens they
/// merged into) plus `dropped`. Each cell is the share of its row's total (viridis, 0–100 %,
/// annotated in percent; an exact zero is left light grey), so rows read as "where did this
/// group's K/V go"; each row's total is written on its right (`Σ`), formatted by `total`.
/// Cells on the diagonal (a group into itself) are outlined. Panels wrap at `maxWidth`, in rows of equal length.
public struct MergeFlowFigure: Sendable {
    public var sources: [String]
    public var targets: [String]
    public var panels: [MergeFlowPanel]
    /// How a row total is written (`Σ 3.1 %`, `Σ 576`).
    public var total: @Sendable (Double) -> String
    public var title: String
    public var subtitle: [String]
    public var maxWidth: Double

    public init(
        sources: [String], targets: [String], panels: [MergeFlowPanel],
        total: @escaping @Sendable (Double) -> String = { String(format: "%.3g", $0) }, title: String,
        subtitle: [String] = [], maxWidth: Double = 1000
    ) {
        precondition(
            panels.allSatisfy { $0.values.count == sources.count && $0.values.allSatisfy { $0.count == targets.count } },
            "MergeFlowFigure: values must be sources × targets")
        self.sources = sources; self.targets = targets; self.panels = panels; self.total = total
        self.title = title; self.subtitle = subtitle; self.maxWidth = maxWidth
    }

    /// Cell and margin sizes of one panel.
    struct Metrics {
        var labelW: Double, cellW: Double, cellH: Double, totalW: Double, headerH: Double, titleH: Double
        var width: Double { labelW + Double(columns) * cellW + totalW }
        var columns: Int
        var height: Double { titleH + headerH + Double(rows) * cellH }
        var rows: Int
    }

    var metrics: Metrics {
        let label = sources.map { Figure.textWidth($0, style: MergeFlowChart.labelStyle) }.max() ?? 0
        let head = targets.map { Figure.textWidth($0, style: MergeFlowChart.labelStyle) }.max() ?? 0
        let totals =
            panels.flatMap { p in p.values.map { Figure.textWidth("Σ " + total($0.reduce(0, +)), style: MergeFlowChart.cellStyle) } }.max()
            ?? 0
        return Metrics(
            labelW: label + 22, cellW: max(30, head + 6), cellH: 16, totalW: totals + 10, headerH: 22, titleH: 14,
            columns: targets.count, rows: sources.count)
    }

    public func build() -> Figure {
        let header = Figure.headerHeight(subtitleLines: subtitle.count, hasTitle: !title.isEmpty)
        let m = metrics, gap = 18.0, cbW = 62.0
        // As many panels per row as fit, then balanced: 4 panels that fit 3 a row go 2 + 2.
        let fit = max(1, min(panels.count, Int((maxWidth - cbW + gap) / (m.width + gap))))
        let panelRows = (panels.count + fit - 1) / fit
        let perRow = max(1, (panels.count + panelRows - 1) / max(panelRows, 1))
        let contentW = Double(perRow) * m.width + Double(perRow - 1) * gap + 12 + cbW
        let width = max(contentW + 16, Figure.titleBlockWidth(title: title, subtitle: subtitle))
        let dx = (width - contentW) / 2
        let labelH = Figure.textWidth("share of row", style: .axisLabel) + 8
        let height = max(header + Double(panelRows) * (m.height + gap) + 4, header + m.titleH + m.headerH + labelH + 6)
        var fig = Figure(size: Size(width, height), title: title, subtitle: subtitle)
        for (i, panel) in panels.enumerated() {
            let x = dx + Double(i % perRow) * (m.width + gap), y = header + Double(i / perRow) * (m.height + gap)
            fig.add(MergeFlowChart(figure: self, panel: panel, metrics: m), in: Rect(x: x, y: y, width: m.width, height: m.height))
        }
        let barTop = header + m.titleH + m.headerH
        let label = "share of row"
        let barH = max(
            Figure.textWidth(label, style: .axisLabel) + 8, min(Double(panelRows) * (m.height + gap) - gap - m.titleH - m.headerH, 220))
        fig.add(
            ColorBar(normalization: .linear(0 ... 1), colorMap: .viridis, label: label),
            in: Rect(x: dx + contentW - cbW, y: barTop, width: cbW, height: barH))
        return fig
    }
}

/// One panel: title, column headers, row labels, cells, row totals.
struct MergeFlowChart: Chart {
    static let labelStyle = TextStyle(size: 7.5, color: .darkGray)
    static let cellStyle = TextStyle(size: 7, color: .black)
    static let zero = RGB(hex: 0xF2F2F2)

    let figure: MergeFlowFigure
    let panel: MergeFlowPanel
    let metrics: MergeFlowFigure.Metrics

    func draw(in canvas: some Canvas, frame: Rect) {
        let m = metrics, f = figure
        let style = panel.style ?? PolicyStyle.of(panel.title)
        canvas.text(
            panel.title, at: Point(frame.minX, frame.minY), style: TextStyle(size: 8, weight: .bold, color: style.color), anchor: .topLeft,
            angle: 0)
        let gridX = frame.minX + m.labelW, gridY = frame.minY + m.titleH + m.headerH
        canvas.text(
            "into (kept token of) →", at: Point(gridX, frame.minY + m.titleH + 1), style: TextStyle(size: 6.5, color: .darkGray),
            anchor: .topLeft, angle: 0)
        for (t, name) in f.targets.enumerated() {
            canvas.text(name, at: Point(gridX + (Double(t) + 0.5) * m.cellW, gridY - 2), style: Self.labelStyle, anchor: .bottom, angle: 0)
        }
        canvas.text(
            "from (evicted)", at: Point(frame.minX + 5, gridY + Double(f.sources.count) * m.cellH / 2),
            style: TextStyle(size: 6.5, color: .darkGray), anchor: .center, angle: 90)
        for (s, name) in f.sources.enumerated() {
            let y = gridY + Double(s) * m.cellH
            canvas.text(name, at: Point(gridX - 4, y + m.cellH / 2), style: Self.labelStyle, anchor: .right, angle: 0)
            let shares = panel.shares(s)
            for t in f.targets.indices {
                let r = Rect(x: gridX + Double(t) * m.cellW, y: y, width: m.cellW, height: m.cellH)
                guard let v = shares?[t] else {
                    canvas.fill(r, RatioMapFigure.missingColor)
                    Hatch.draw(in: canvas, rect: r)
                    continue
                }
                let colour = v > 0 ? ColorMap.viridis.color(v) : Self.zero
                canvas.fill(r, colour)
                let lum = 0.299 * Double(colour.r) + 0.587 * Double(colour.g) + 0.114 * Double(colour.b)
                let text = v == 0 ? "0" : v < 0.005 ? "<1%" : "\(Int((v * 100).rounded()))%"
                canvas.text(
                    text, at: r.center, style: TextStyle(size: 7, color: v == 0 ? RGB(hex: 0x9A9A9A) : lum < 128 ? .white : .black),
                    anchor: .center, angle: 0)
            }
            canvas.text(
                "Σ " + f.total(panel.values[s].reduce(0, +)), at: Point(gridX + Double(f.targets.count) * m.cellW + 4, y + m.cellH / 2),
                style: Self.cellStyle, anchor: .left, angle: 0)
        }
        let grid = Rect(x: gridX, y: gridY, width: Double(f.targets.count) * m.cellW, height: Double(f.sources.count) * m.cellH)
        for t in f.targets.indices {
            canvas.line(
                from: Point(grid.minX + Double(t) * m.cellW, grid.minY), to: Point(grid.minX + Double(t) * m.cellW, grid.maxY),
                StrokeStyle(.white, width: 0.75))
        }
        for s in f.sources.indices {
            canvas.line(
                from: Point(grid.minX, grid.minY + Double(s) * m.cellH), to: Point(grid.maxX, grid.minY + Double(s) * m.cellH),
                StrokeStyle(.white, width: 0.75))
        }
        // A group into itself: outlined.
        for (s, name) in f.sources.enumerated() {
            guard let t = f.targets.firstIndex(of: name) else { continue }
            canvas.stroke(
                .rect(
                    Rect(
                        x: grid.minX + Double(t) * m.cellW + 0.75, y: grid.minY + Double(s) * m.cellH + 0.75,
                        width: m.cellW - 1.5, height: m.cellH - 1.5)), StrokeStyle(.darkGray, width: 1))
        }
        canvas.stroke(.rect(grid), StrokeStyle(.darkGray, width: 0.5))
    }
}
