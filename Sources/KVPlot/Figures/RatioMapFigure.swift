import Foundation

/// The ratio map (`kvscope explore`, `kvscope render ratios`): one policy's metric over a grid
/// of heavy-hitter ratios (x, columns) × recent ratios (y, rows, ascending upward).
///
/// Each cell is coloured by its value (viridis, linear over the values' range unless given) and
/// annotated with it; dashed iso-lines of the actual kept ratio (marching squares over the cell
/// centres, linear interpolation, levels at nice steps inside the kept range) run across the grid;
/// a thick black outline surrounds the safe cells, a ring marks the cheapest safe cell, and cells
/// without a value are hatched grey and annotated "n/a".
public struct RatioMapFigure: Sendable {
    /// A cell: `row` indexes `recent`, `col` indexes `hh`.
    public struct Cell: Sendable, Hashable {
        public var row: Int, col: Int
        public init(row: Int, col: Int) { self.row = row; self.col = col }
    }

    /// The fill under the white hatch of cells without a value.
    public static let missingColor = RGB(hex: 0xBDBDBD)

    public var hh: [Double]
    public var recent: [Double]
    /// `recent.count × hh.count`, row-major, row 0 = the smallest recent ratio (drawn at the bottom).
    public var values: [Double?]
    /// Actual kept ratios per cell (same layout), for the iso-lines; nil where unknown.
    public var kept: [Double?]
    /// Safe cells (same layout); nil = no safe region drawn.
    public var safe: [Bool]?
    public var cheapest: Cell?
    public var metric: String
    public var title: String
    public var subtitle: [String]
    public var normalization: Normalization?
    public var colorMap: ColorMap
    /// Iso-line levels of the kept ratio; nil = automatic (nice steps, at most 5).
    public var isoLevels: [Double]?
    public var size: Size?

    public init(
        hh: [Double], recent: [Double], values: [Double?], kept: [Double?], safe: [Bool]? = nil, cheapest: Cell? = nil,
        metric: String, title: String, subtitle: [String] = [], normalization: Normalization? = nil,
        colorMap: ColorMap = .viridis, isoLevels: [Double]? = nil, size: Size? = nil
    ) {
        precondition(values.count == hh.count * recent.count && kept.count == values.count, "RatioMapFigure: grid size mismatch")
        self.hh = hh; self.recent = recent; self.values = values; self.kept = kept; self.safe = safe; self.cheapest = cheapest
        self.metric = metric; self.title = title; self.subtitle = subtitle; self.normalization = normalization
        self.colorMap = colorMap; self.isoLevels = isoLevels; self.size = size
    }

    /// The colour normalisation: the one given, else linear over the finite values. When they are
    /// all equal, ±1 % of the value (at least ±0.001) around it, so that a recall of 0.92 in every
    /// cell does not get a colour bar running to 1.4.
    public var resolvedNormalization: Normalization {
        if let normalization { return normalization }
        let v = values.compactMap { $0 }.filter(\.isFinite)
        guard let lo = v.min(), let hi = v.max() else { return .linear(0 ... 1) }
        let d = max(abs(lo) * 0.01, 0.001)
        return lo < hi ? .linear(lo ... hi) : .linear((lo - d) ... (hi + d))
    }

    /// The iso-line levels: the ones given, else nice steps strictly inside the kept range.
    public var resolvedIsoLevels: [Double] {
        if let isoLevels { return isoLevels }
        let k = kept.compactMap { $0 }.filter(\.isFinite)
        guard let lo = k.min(), let hi = k.max(), hi > lo else { return [] }
        return Ticks.linear(lo ... hi, target: 4).map(\.value).filter { $0 > lo && $0 < hi }
    }

    public func build() -> Figure {
        // Only what is drawn: no iso-line entry when the kept ratio is the same in every cell, no safe
        // entries when no cell is safe.
        var entries: [LegendEntry] = []
        if !resolvedIsoLevels.isEmpty {
            entries.append(LegendEntry("kept ratio (actual), iso-lines", key: .line(.black, dash: [3, 2], marker: .none)))
        }
        if safe?.contains(true) == true { entries.append(LegendEntry("safe region", key: .line(.black, dash: [], marker: .none))) }
        if cheapest != nil { entries.append(LegendEntry("cheapest safe", key: .line(Palette.merged, dash: [], marker: .square))) }
        if values.contains(where: { $0 == nil }) { entries.append(LegendEntry("no value", key: .hatchedSwatch(Self.missingColor))) }
        let legend = Legend(entries, layout: .rows)
        let header = Figure.headerHeight(subtitleLines: subtitle.count, hasTitle: !title.isEmpty)
        let cellW = hh.count > 8 ? 46.0 : 58.0, cellH = recent.count > 8 ? 30.0 : 38.0
        let cbW = 62.0, left = 64.0, right = 14.0
        let width = size?.width ?? max(360, left + Double(hh.count) * cellW + 12 + cbW + right)
        // The legend wraps onto as many rows as the page width needs; the page grows to hold them.
        let legendH = entries.isEmpty ? 0 : legend.size(in: RecordingCanvas(size: Size(width, 100)), width: width - 16).height
        let bottom = 40.0 + (entries.isEmpty ? 0 : legendH + 9)
        // At least 120 pt of grid, so that the rotated y label fits beside it (two recent ratios).
        let size = self.size ?? Size(width, header + max(Double(recent.count) * cellH, 120) + bottom + 6)
        var fig = Figure(size: size, title: title, subtitle: subtitle)
        let plot = Rect(x: left, y: header, width: size.width - left - 12 - cbW - right, height: size.height - header - bottom)
        let norm = resolvedNormalization
        fig.add(RatioMapChart(figure: self, normalization: norm, levels: resolvedIsoLevels), in: plot)
        fig.add(
            ColorBar(normalization: norm, colorMap: colorMap, label: metric),
            in: Rect(x: plot.maxX + 12, y: plot.minY, width: cbW, height: plot.height))
        if !entries.isEmpty { fig.add(legend, in: Rect(x: 8, y: size.height - 4 - legendH, width: size.width - 16, height: legendH)) }
        return fig
    }
}

/// The grid itself: cells, annotations, iso-lines, safe outline, cheapest marker, axes.
struct RatioMapChart: Chart {
    let figure: RatioMapFigure
    let normalization: Normalization
    let levels: [Double]

    func draw(in canvas: some Canvas, frame plot: Rect) {
        let f = figure
        let nx = f.hh.count, ny = f.recent.count
        guard nx > 0, ny > 0 else { return }
        let cw = plot.width / Double(nx), ch = plot.height / Double(ny)
        func rect(_ w: Int, _ c: Int) -> Rect {
            Rect(x: plot.minX + Double(c) * cw, y: plot.maxY - Double(w + 1) * ch, width: cw, height: ch)
        }
        func centre(_ w: Int, _ c: Int) -> Point { rect(w, c).center }
        let fraction = f.values.compactMap { $0 }.allSatisfy { $0 >= 0 && $0 <= 1 }
        // Cells (annotations are drawn after the iso-lines, on top of them).
        var labels: [(String, Point, TextStyle)] = []
        for w in 0 ..< ny {
            for c in 0 ..< nx {
                let r = rect(w, c)
                if let v = f.values[w * nx + c], v.isFinite {
                    let colour = f.colorMap.color(normalization(v))
                    canvas.fill(r, colour)
                    let lum = 0.299 * Double(colour.r) + 0.587 * Double(colour.g) + 0.114 * Double(colour.b)
                    let text = fraction ? String(format: "%.3f", v) : String(format: "%.3g", v)
                    labels.append((text, r.center, TextStyle(size: 8, color: lum < 128 ? .white : .black)))
                } else {
                    canvas.fill(r, RatioMapFigure.missingColor)
                    Hatch.draw(in: canvas, rect: r)
                    labels.append(("n/a", r.center, TextStyle(size: 8, color: .black)))
                }
            }
        }
        canvas.stroke(.rect(plot), .init(.darkGray, width: 0.5))
        // Iso-lines of the kept ratio (marching squares over the cell centres).
        let iso = StrokeStyle(color: RGBA(.black, alpha: 0.8), width: 1, dash: [3, 2])
        canvas.pushClip(plot)
        for level in levels {
            var labelled = false
            for w in 0 ..< max(0, ny - 1) {
                for c in 0 ..< max(0, nx - 1) {
                    guard let a = f.kept[w * nx + c], let b = f.kept[w * nx + c + 1],
                        let d = f.kept[(w + 1) * nx + c], let e = f.kept[(w + 1) * nx + c + 1]
                    else { continue }
                    let p00 = centre(w, c), p10 = centre(w, c + 1), p01 = centre(w + 1, c), p11 = centre(w + 1, c + 1)
                    var hits: [Point] = []
                    func edge(_ p: Point, _ u: Double, _ q: Point, _ v: Double) {
                        guard (u >= level) != (v >= level), u != v else { return }
                        let t = (level - u) / (v - u)
                        hits.append(Point(p.x + (q.x - p.x) * t, p.y + (q.y - p.y) * t))
                    }
                    edge(p00, a, p10, b); edge(p10, b, p11, e); edge(p11, e, p01, d); edge(p01, d, p00, a)
                    var i = 0
                    while i + 1 < hits.count {
                        canvas.line(from: hits[i], to: hits[i + 1], iso)
                        i += 2
                    }
                    if !labelled, hits.count >= 2 {
                        labelled = true
                        let m = Point((hits[0].x + hits[1].x) / 2, (hits[0].y + hits[1].y) / 2)
                        let label = Ticks.compact(level)
                        let size = canvas.measure(label, style: .panelTitle)
                        canvas.fill(
                            Path.rect(Rect(x: m.x - size.width / 2 - 1.5, y: m.y - 4.5, width: size.width + 3, height: 9)),
                            RGBA(.white, alpha: 0.85))
                        canvas.text(label, at: m, style: .panelTitle, anchor: .center, angle: 0)
                    }
                }
            }
        }
        canvas.popClip()
        for (text, p, style) in labels { canvas.text(text, at: p, style: style, anchor: .center, angle: 0) }
        // Safe region outline: every edge between a safe cell and a non-safe cell or the border.
        if let safe = f.safe {
            let s = StrokeStyle(.black, width: 2.2, cap: .square)
            func isSafe(_ w: Int, _ c: Int) -> Bool { w >= 0 && w < ny && c >= 0 && c < nx && safe[w * nx + c] }
            for w in 0 ..< ny {
                for c in 0 ..< nx where isSafe(w, c) {
                    let r = rect(w, c)
                    if !isSafe(w - 1, c) { canvas.line(from: Point(r.minX, r.maxY), to: Point(r.maxX, r.maxY), s) }
                    if !isSafe(w + 1, c) { canvas.line(from: Point(r.minX, r.minY), to: Point(r.maxX, r.minY), s) }
                    if !isSafe(w, c - 1) { canvas.line(from: Point(r.minX, r.minY), to: Point(r.minX, r.maxY), s) }
                    if !isSafe(w, c + 1) { canvas.line(from: Point(r.maxX, r.minY), to: Point(r.maxX, r.maxY), s) }
                }
            }
        }
        if let best = f.cheapest, best.row < ny, best.col < nx {
            let r = rect(best.row, best.col)
            let ring = Path.rect(Rect(x: r.minX + 2.5, y: r.minY + 2.5, width: r.width - 5, height: r.height - 5))
            canvas.stroke(ring, StrokeStyle(.white, width: 3.5))
            canvas.stroke(ring, StrokeStyle(Palette.merged, width: 2))
        }
        // Axes: category labels at the cell centres.
        for c in 0 ..< nx {
            canvas.text(
                Ticks.compact(f.hh[c]), at: Point(plot.minX + (Double(c) + 0.5) * cw, plot.maxY + 4), style: .tick, anchor: .top, angle: 0)
        }
        for w in 0 ..< ny {
            canvas.text(
                Ticks.compact(f.recent[w]), at: Point(plot.minX - 4, plot.maxY - (Double(w) + 0.5) * ch), style: .tick, anchor: .right,
                angle: 0)
        }
        canvas.text(
            "hh_ratio (heavy hitters, hh = int(P·x))", at: Point(plot.midX, plot.maxY + 17), style: .axisLabel, anchor: .top, angle: 0)
        canvas.text("recent_ratio (r = int(P·y))", at: Point(plot.minX - 40, plot.midY), style: .axisLabel, anchor: .center, angle: 90)
    }
}
