import Foundation
import Testing
@testable import KVPlot

/// A small causal matrix with known values: row i, column j ≤ i holds 10^-(i-j) clipped at 1e-4.
func knownMatrix(_ n: Int) -> [Float] {
    var m = [Float](repeating: 0, count: n * n)
    for i in 0 ..< n { for j in 0 ... i { m[i * n + j] = Float(max(1e-4, pow(10, -Double(i - j)))) } }
    return m
}

@Suite struct HeatmapRasterTests {
    @Test func cellColoursFollowNormAndMap() {
        let n = 6
        let data = HeatmapData(values: knownMatrix(n), rows: n, cols: n)
        let img = HeatmapRaster.render(data, normalization: .log(1e-4 ... 1), colorMap: .viridis, mask: .causal)
        #expect(img.width == n && img.height == n)
        #expect(img[2, 2] == ColorMap.viridis.color(1))  // 1 → top colour
        // 1e-2 → the middle (t of the stored Float value, which lies a hair below 0.5).
        #expect(img[0, 2] == ColorMap.viridis.color(Normalization.log(1e-4 ... 1)(Double(Float(1e-2)))))
        #expect(img[0, 2] == RGB(hex: ColorMap.viridis.table[127]))
        #expect(img[0, 5] == ColorMap.viridis.color(0))  // 1e-4 → bottom
        #expect(img[3, 2] == Palette.mask)  // above the diagonal
        #expect(img[5, 0] == Palette.mask)
    }

    @Test func nanAndExplicitMasks() {
        var v = knownMatrix(4)
        v[3 * 4 + 1] = .nan
        var cells = [Bool](repeating: false, count: 16)
        cells[2 * 4 + 0] = true
        let img = HeatmapRaster.render(
            HeatmapData(values: v, rows: 4, cols: 4), normalization: .log(1e-4 ... 1),
            colorMap: .magma, mask: .cells(cells), maskColor: RGB(hex: 0x123456))
        #expect(img[1, 3] == RGB(hex: 0x123456))
        #expect(img[0, 2] == RGB(hex: 0x123456))
        #expect(img[0, 3] == ColorMap.magma.color(Normalization.log(1e-4 ... 1)(1e-3)))
        #expect(img[3, 0] != RGB(hex: 0x123456))  // no causal mask requested
    }

    @Test func causalMaskUsesAbsoluteRowPositionsForWindows() {
        // Rows are queries 10 ..< 12 over keys 0 ..< 12: row 0 (query 10) sees keys 0...10.
        let data = HeatmapData(values: [Float](repeating: 0.5, count: 24), rows: 2, cols: 12, rowStart: 10)
        let img = HeatmapRaster.render(data, normalization: .linear(0 ... 1), colorMap: .viridis, mask: .causal)
        #expect(img[10, 0] != Palette.mask)
        #expect(img[11, 0] == Palette.mask)
        #expect(img[11, 1] != Palette.mask)
    }

    @Test func poolingMaxMeanAndMaskedBlocks() {
        let n = 4
        let data = HeatmapData(values: knownMatrix(n), rows: n, cols: n)
        let mx = data.pooled(2, mode: .max, causal: true)
        #expect(mx.rows == 2 && mx.cols == 2 && mx.cellSpan == 2)
        #expect(mx.values[0] == 1)  // block (0,0) holds the diagonal
        #expect(mx.values[1].isNaN)  // block (0,1) entirely above the diagonal
        #expect(mx.values[2] == Float(0.1))  // rows 2–3, cols 0–1: max 1e-1
        let mean = data.pooled(2, mode: .mean, causal: true)
        // Block (0,0): causal entries 1, 0.1, 1 → mean 0.7 (the masked upper entry is ignored).
        #expect(abs(mean.values[0] - 0.7) < 1e-6)
        let img = HeatmapRaster.render(mx, normalization: .log(1e-4 ... 1), colorMap: .viridis, mask: .causal)
        #expect(img[1, 0] == Palette.mask && img[0, 0] == ColorMap.viridis.color(1))
        #expect(HeatmapData.poolFactor(rows: 4096, cols: 4096, limit: 600) == 7)
    }
}

@Suite struct HeatmapFigureTests {
    let bands = [
        ModalityBand(0 ..< 4, kind: .text, label: "sys"), ModalityBand(4 ..< 20, kind: .image, label: "image 1"),
        ModalityBand(20 ..< 32, kind: .text, label: "text"),
    ]

    func figure(n: Int = 32, poolLimit: Int? = nil) -> Figure {
        HeatmapFigure(
            matrix: knownMatrix(n), rows: n, cols: n, bands: bands.filter { $0.range.upperBound <= n },
            title: "trace — L0 H0", subtitle: ["one head"], poolLimit: poolLimit
        ).build()
    }

    func draw(_ f: Figure) -> RecordingCanvas {
        let c = RecordingCanvas(size: f.size)
        f.draw(in: c)
        return c
    }

    @Test func drawsTitleAxesAndSpanBoundaryTicks() throws {
        let f = figure()
        let c = draw(f)
        #expect(c.text("trace — L0 H0")?.style.weight == .bold)
        #expect(c.text("key position") != nil)
        let yLabel = try #require(c.text("query position"))
        #expect(yLabel.angle == 90)
        let chart = try #require(f.panels.first?.chart as? HeatmapChart)
        let plot = chart.plotRect(in: f.panels[0].frame)
        #expect(abs(plot.width - plot.height) < 1e-9)  // square cells on a square matrix
        // Boundary ticks 0, 4, 20, 32 below the map at their x positions; labels for x and y.
        for p in [0, 20, 32] {
            let labels = c.texts.filter { $0.string == String(p) }
            #expect(labels.count == 2, "tick \(p)")
            let xLabel = try #require(labels.first { $0.anchor == .top })
            #expect(abs(xLabel.point.x - (plot.minX + Double(p) / 32 * plot.width)) < 0.01)
            #expect(xLabel.point.y > plot.maxY)
        }
        // No tick label at a non-boundary position.
        #expect(c.text("16") == nil)
    }

    @Test func bandsAlongBothAxesAtSpanPositions() throws {
        let f = figure()
        let c = draw(f)
        let chart = try #require(f.panels.first?.chart as? HeatmapChart)
        let plot = chart.plotRect(in: f.panels[0].frame)
        let imageRects = c.filledRects(BandKind.image.color)
        #expect(imageRects.count == 2)
        let top = try #require(imageRects.first { $0.height == 6 })
        #expect(abs(top.minX - (plot.minX + 4.0 / 32 * plot.width)) < 1e-9)
        #expect(abs(top.width - 16.0 / 32 * plot.width) < 1e-9)
        #expect(top.maxY <= plot.minY)
        let left = try #require(imageRects.first { $0.width == 6 })
        #expect(abs(left.minY - (plot.minY + 4.0 / 32 * plot.height)) < 1e-9)
        #expect(left.maxX <= plot.minX)
        #expect(c.text("image 1") != nil)  // the span label fits above the strip
    }

    @Test func colourBarRangeAndDecadeTicks() throws {
        let f = figure()
        let c = draw(f)
        let bar = try #require(f.panels.compactMap { $0.chart as? ColorBar }.first)
        let barFrame = try #require(f.panels.first { $0.chart is ColorBar }?.frame)
        #expect(bar.label == "attention weight, log")
        #expect(c.text("attention weight, log")?.angle == 90)
        let lo = try #require(c.text("1e-4")), hi = try #require(c.text("1"))
        #expect(abs(lo.point.y - barFrame.maxY) < 0.01)
        #expect(abs(hi.point.y - barFrame.minY) < 0.01)
        #expect(lo.point.x > barFrame.minX + bar.barWidth)  // ticks outside, to the right
        for d in ["1e-3", "1e-2", "1e-1"] { #expect(c.text(d) != nil) }
        #expect(c.images.contains { $0.image.height == 256 && $0.image.width == 1 })
    }

    @Test func heatmapIsOneImageAndUpperTriangleMasked() throws {
        let c = draw(figure())
        let maps = c.images.filter { $0.image.width == 32 }
        #expect(maps.count == 1)
        let img = maps[0].image
        #expect(img[31, 0] == Palette.mask)
        #expect(img[0, 31] == ColorMap.viridis.color(0))
        #expect(img[10, 10] == ColorMap.viridis.color(1))
        // No per-cell rectangles: only a handful of fills.
        #expect(c.operations.filter { if case .fill = $0 { return true } else { return false } }.count < 20)
    }

    @Test func poolingIsStatedInTheSubtitle() throws {
        let f = figure(n: 64, poolLimit: 16)
        #expect(f.subtitle.contains("max-pooled 4×4"))
        let c = draw(f)
        #expect(c.text("max-pooled 4×4") != nil)
        #expect(c.images.contains { $0.image.width == 16 && $0.image.height == 16 })
        #expect(!figure(n: 32).subtitle.contains { $0.contains("pooled") })
    }

    @Test func dumpIsStableAndReadable() {
        let a = draw(figure()).dump, b = draw(figure()).dump
        #expect(a == b)
        #expect(a.contains("text \"key position\""))
        #expect(a.contains("image 32x32 in "))
        #expect(a.split(separator: "\n").first?.hasPrefix("fill #ffffff M0.00,0.00") == true)
    }
}

@Suite struct HeatmapGridFigureTests {
    @Test func sharedColourBarAndOuterTickLabelsOnly() {
        let n = 8
        let panels = (0 ..< 4).map { HeatmapGridPanel(title: "L\($0 / 2) H\($0 % 2)", matrix: knownMatrix(n)) }
        let f = HeatmapGridFigure(panels: panels, gridColumns: 2, rows: n, cols: n, title: "grid").build()
        #expect(f.panels.filter { $0.chart is ColorBar }.count == 1)
        let charts = f.panels.compactMap { $0.chart as? HeatmapChart }
        #expect(charts.count == 4)
        #expect(charts.map(\.showYTickLabels) == [true, false, true, false])
        #expect(charts.map(\.showXTickLabels) == [false, false, true, true])
        let c = RecordingCanvas(size: f.size)
        f.draw(in: c)
        for t in ["L0 H0", "L0 H1", "L1 H0", "L1 H1"] { #expect(c.text(t)?.style.size == 7) }
        let pooled = HeatmapGridFigure(
            panels: [HeatmapGridPanel(title: "a", matrix: knownMatrix(64))], gridColumns: 1,
            rows: 64, cols: 64, title: "g", panelSize: 16, scale: 1
        ).build()
        #expect(pooled.subtitle == ["max-pooled 4×4"])
    }
}
