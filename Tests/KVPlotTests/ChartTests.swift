import Testing
@testable import KVPlot

@Suite struct CurvesFigureTests {
    let curves = [
        Curve(policy: "h2o", style: .declared(color: 0x0072B2, merge: nil), x: [0.1, 0.2, 0.5], y: [0.3, 0.5, 0.8]),
        Curve(policy: "lookm", style: .declared(color: 0xD55E00, merge: "pivotal"), x: [0.1, 0.2, 0.5], y: [0.4, 0.6, 0.9]),
        Curve(
            policy: "snapkv+average", style: .declared(color: 0x009E73, merge: "average"), label: "SnapKV avg", x: [0.1, 0.2, 0.5],
            y: [0.35, 0.55, 0.85]),
    ]

    func render(_ f: Figure) -> RecordingCanvas { let c = RecordingCanvas(size: f.size); f.draw(in: c); return c }

    @Test func legendEntriesInPolicyOrderWithFixedColours() throws {
        let f = CurvesFigure(curves: curves, metric: "attention recall", title: "sweep", yRange: 0 ... 1, reference: 1).build()
        let c = render(f)
        let labels = ["h2o", "lookm", "SnapKV avg", "full cache"]
        let items = labels.map { c.text($0) }
        #expect(items.allSatisfy { $0 != nil })
        let ys = items.compactMap { $0?.point.y }
        #expect(ys == ys.sorted() && Set(ys).count == 4)  // one column, in order (legend at right)
        #expect(!c.strokes(RGB(hex: 0x0072B2)).isEmpty)  // h2o blue
        #expect(c.strokes(RGB(hex: 0xD55E00)).contains { $0.elements.count == 3 })  // lookm polyline
    }

    @Test("a setting without a value is marked by a cross in the policy's colour on the x axis, at its x")
    func missingSettingsAreMarked() throws {
        let blue = RGB(hex: 0x0072B2)
        func crosses(_ missing: [Double]) throws -> (count: Int, xs: [Double], plot: Rect) {
            var cs = curves
            cs[0].missing = missing
            let f = CurvesFigure(curves: cs, metric: "attention recall", title: "sweep", yRange: 0 ... 1).build()
            let c = render(f)
            let chart = try #require(f.panels[0].chart as? LineChart)
            let (plot, _) = chart.layout(in: c, frame: f.panels[0].frame)
            // Every blue stroke that is not the polyline: the markers' outlines and the crosses.
            let strokes = c.strokes(blue).filter { $0.elements.count != 3 }
            let low = strokes.compactMap { p -> Double? in
                guard case let .move(a) = p.elements.first, a.y > plot.maxY - 12 else { return nil }
                return a.x
            }
            return (strokes.count, low, plot)
        }
        let none = try crosses([]), one = try crosses([0.3]), two = try crosses([0.3, 0.4])
        #expect(one.count > none.count && two.count - one.count == one.count - none.count)
        #expect(none.xs.isEmpty && !one.xs.isEmpty)
        // The cross sits at x = 0.3 of the 0.1 … 0.5 axis.
        let at = one.plot.minX + (0.3 - 0.1) / 0.4 * one.plot.width
        #expect(one.xs.allSatisfy { abs($0 - at) < 6 }, "\(one.xs) vs \(at)")
    }

    @Test func referenceLineDashedBlackAtFullValue() throws {
        let f = CurvesFigure(curves: curves, metric: "attention recall", title: "sweep", yRange: 0 ... 1, reference: 1).build()
        let c = render(f)
        let chart = try #require(f.panels[0].chart as? LineChart)
        let (plot, _) = chart.layout(in: c, frame: f.panels[0].frame)
        let refs = c.operations.compactMap { op -> Path? in
            if case let .stroke(p, s) = op, s.color.rgb == .black, !s.dash.isEmpty, p.elements.count == 2 { return p }
            return nil
        }
        let ref = try #require(refs.first)
        #expect(ref.elements.first == .move(Point(plot.minX, plot.minY)))  // y = 1 is the top of 0…1
        #expect(c.text("1.0") != nil && c.text("0.0") != nil)
    }

    @Test func markersFollowMergeStyle() {
        let f = CurvesFigure(curves: curves, metric: "recall", title: "t").build()
        let c = render(f)
        // lookm (pivotal) → open squares: stroked rects in its colour, one per point (+1 legend key).
        let squares = c.operations.filter {
            if case let .stroke(p, s) = $0 { return s.color.rgb == RGB(hex: 0xD55E00) && p.asRect != nil } else { return false }
        }
        #expect(squares.count == 4)
        // h2o → circles (4 Béziers): no rectangles in its colour.
        #expect(c.filledRects(RGB(hex: 0x0072B2)).isEmpty)
    }

    @Test func legendMovesBelowBeyondEightEntries() {
        let many = (0 ..< 9).map { Curve(policy: "p\($0)", x: [0, 1], y: [0, 1]) }
        let f = CurvesFigure(curves: many, metric: "m", title: "t").build()
        let c = render(f)
        let chart = f.panels[0].chart as! LineChart
        let (plot, legend) = chart.layout(in: c, frame: f.panels[0].frame)
        #expect(legend != nil && legend!.minY > plot.maxY)
    }
}

@Suite struct OtherFigureTests {
    func render(_ f: Figure) -> RecordingCanvas { let c = RecordingCanvas(size: f.size); f.draw(in: c); return c }

    @Test func stackedBarsHaveHeightsProportionalToShares() throws {
        let chart = BarChart(
            categories: ["a", "b"],
            series: [
                BarSeries(label: "text", color: BandKind.text.color, values: [0.25, 1]),
                BarSeries(label: "image", color: BandKind.image.color, values: [0.75, 0]),
            ], yAxis: Axis(scale: .linear(0 ... 1)))
        let plot = Rect(x: 0, y: 0, width: 100, height: 200)
        let r = chart.barRects(plot: plot)
        #expect(r[0][0].height == 50 && r[0][0].maxY == 200)
        #expect(r[1][0].height == 150 && r[1][0].maxY == 150)  // stacked on top
        #expect(r[0][1].height == 200 && r[1][1].height == 0)
        let grouped = BarChart(categories: ["a"], series: chart.series, mode: .grouped, yAxis: Axis(scale: .linear(0 ... 1)))
        let g = grouped.barRects(plot: plot)
        #expect(g[0][0].maxX <= g[1][0].minX + 1e-9)  // side by side
    }

    @Test func modalityFigureHasBothPanelsAndLegend() {
        let f = ModalityFigure(
            layers: [0, 1, 2], textMean: [1e-2, 2e-2, 3e-2], imageMean: [1e-3, 1e-3, 2e-3],
            policies: ["h2o", "lookm"], shares: [[0.6, 0.4], [0.9, 0.1]], promptShare: [0.3, 0.7],
            title: "modality"
        ).build()
        let c = render(f)
        for s in ["text token", "image token", "prompt", "h2o", "lookm", "text", "image", "layer", "1e-2"] {
            #expect(c.text(s) != nil, "\(s)")
        }
        #expect(c.filledRects(BandKind.image.color).count >= 3)
    }

    @Test func retentionFigureMarksPrefillAndSharesColourBar() throws {
        let tokens = 40, rows = 4
        let kept = (0 ..< rows * tokens).map { Double($0 % 3) / 2 }
        let f = RetentionFigure(
            panels: [
                RetentionPanel(title: "h2o C=8", kept: kept, rows: rows),
                RetentionPanel(title: "lookm C=8", kept: kept, rows: rows, merged: [5]),
            ],
            tokens: tokens, prefillLength: 30, bands: [ModalityBand(0 ..< 10, kind: .image, label: "image 1")],
            title: "retention"
        ).build()
        let c = render(f)
        #expect(f.panels.filter { $0.chart is ColorBar }.count == 1)
        #expect(c.text("P = 30") != nil && c.text("h2o C=8") != nil && c.text("lookm C=8") != nil)
        let chart = try #require(f.panels.first { $0.chart is HeatmapChart }.map { ($0.chart as! HeatmapChart, $0.frame) })
        let plot = chart.0.plotRect(in: chart.1)
        let px = plot.minX + 30.0 / 40 * plot.width
        let lines = c.operations.compactMap { op -> Path? in
            if case let .stroke(p, s) = op, s.color.rgb == .black, s.width == 0.75 { return p } else { return nil }
        }
        #expect(lines.contains { $0.elements.first == .move(Point(px, plot.minY)) })
        #expect(!c.strokes(Palette.merged).isEmpty)  // merged tick
        #expect(c.text("position") != nil && c.texts.filter { $0.string == "layer" }.count == 2)
    }

    @Test func patchGridOnePanelPerPolicyAndImage() {
        let f = PatchGridFigure(
            policies: ["h2o", "lookm"],
            images: [
                PatchImage(title: "pseudo-image (text tokens)", rows: 2, cols: 2, levels: [0, 1, 1, 0]),
                PatchImage(title: "image 2", rows: 3, cols: 3),
            ],
            kept: [[[0, 1, 0.5, 1], Array(repeating: 1, count: 9)], [[1, 1, 1, 1], Array(repeating: 0, count: 9)]],
            title: "patches"
        ).build()
        let c = render(f)
        #expect(c.images.filter { $0.image.width == 2 }.count == 3)  // 2 retention grids + 1 grey picture
        #expect(c.images.filter { $0.image.width == 3 }.count == 2)
        #expect(c.text("kept fraction") != nil && c.text("grey levels") != nil)
        let grey = c.images.first { $0.image.width == 2 && $0.image[1, 0] == .white }
        #expect(grey != nil)
        let cividisTop = ColorMap.cividis.color(1)
        #expect(c.images.contains { $0.image.width == 3 && $0.image[0, 0] == cividisTop })
    }

    @Test func mergeArcsOneArcPerMergeInRange() {
        let merges = [
            MergeArc(source: 3, target: 1, value: 0.9), MergeArc(source: 8, target: 2, value: 0.1),
            MergeArc(source: 50, target: 40, value: 0.5),
        ]
        let f = MergeArcsFigure(tokens: 60, kept: [0, 1, 2], merges: merges, excluded: [7], range: 0 ..< 20, title: "merges").build()
        let c = render(f)
        let arcs = c.operations.filter {
            if case let .stroke(p, s) = $0, s.width == 0.5, s.color.alpha == 0.6, p.elements.count == 2,
                case .curve = p.elements[1]
            {
                return true
            } else {
                return false
            }
        }
        #expect(arcs.count == 2)  // the 50→40 merge is outside the zoom
        #expect(c.text("cosine similarity") != nil)
        // The strongest merge is drawn last and coloured with the top of viridis (approx).
        if case let .stroke(_, s) = arcs.last! { #expect(s.color.rgb == ColorMap.viridis.color(0.9)) }
    }

    @Test func axisSkipsOverlappingTickLabels() {
        let c = RecordingCanvas(size: Size(200, 100))
        let ticks = [Tick(0, "0"), Tick(1, "1"), Tick(2, "2"), Tick(100, "100")]
        Axis(scale: .linear(0 ... 100), ticks: .explicit(ticks)).draw(in: c, plot: Rect(x: 0, y: 0, width: 100, height: 50), side: .bottom)
        #expect(c.text("0") != nil && c.text("1") == nil && c.text("100") != nil)
    }

    @Test func facetGridFrames() {
        let g = FacetGrid(rows: 2, cols: 3, area: Rect(x: 10, y: 20, width: 316, height: 208), hGap: 8, vGap: 8)
        #expect(g.cellSize == Size(100, 100))
        #expect(g.frame(row: 1, col: 2) == Rect(x: 226, y: 128, width: 100, height: 100))
    }
}
