import Foundation
import KVCairo
import KVPlot
import Testing

@Suite struct PNGPixelTests {
    @Test func pngHasSignatureAndScaledSize() throws {
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent("h.png")
        let fig = heatmapFigure()
        try render(fig, to: url, format: .png(scale: 2))
        let bytes = try Data(contentsOf: url)
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let img = try readPNG(url)
        #expect(img.width == Int((fig.size.width * 2).rounded(.up)))
        #expect(img.height == Int((fig.size.height * 2).rounded(.up)))
        try render(fig, to: url, format: .png(scale: 1))
        #expect(try readPNG(url).width == Int(fig.size.width.rounded(.up)))
    }

    @Test func heatmapCellsHaveColourMapColoursAndMaskedCellsTheMaskColour() throws {
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent("h.png")
        let n = 24, scale = 2.0
        let fig = heatmapFigure(n: n)
        try render(fig, to: url, format: .png(scale: scale))
        let img = try readPNG(url)
        let panel = try #require(fig.panels.first { $0.chart is HeatmapChart })
        let chart = panel.chart as! HeatmapChart
        let plot = chart.plotRect(in: panel.frame)
        func pixel(row: Int, col: Int) -> RGB {
            let x = Int((plot.minX + (Double(col) + 0.5) * plot.width / Double(n)) * scale)
            let y = Int((plot.minY + (Double(row) + 0.5) * plot.height / Double(n)) * scale)
            return img[x, y]
        }
        let norm = Normalization.log(1e-4 ... 1)
        let matrix = knownMatrix(n)
        for (r, c) in [(5, 5), (6, 5), (7, 5), (20, 2), (12, 10)] {
            let expected = ColorMap.viridis.color(norm(Double(matrix[r * n + c])))
            #expect(channelsClose(pixel(row: r, col: c), expected), "cell (\(r), \(c))")
        }
        #expect(pixel(row: 2, col: 20) == Palette.mask)
        #expect(pixel(row: 0, col: 1) == Palette.mask)
        // The image cells are not all one colour (the test would pass on a blank map otherwise).
        #expect(pixel(row: 5, col: 5) != pixel(row: 20, col: 2))
    }

    @Test func titleAndLabelAreasAreNotBlank() throws {
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent("c.png")
        let fig = curvesFigure()
        try render(fig, to: url, format: .png(scale: 2))
        let img = try readPNG(url)
        func darkPixels(_ r: Rect) -> Int {
            var n = 0
            for y in Int(r.minY * 2) ..< Int(r.maxY * 2) {
                for x in Int(r.minX * 2) ..< Int(r.maxX * 2) {
                    let p = img[x, y]
                    if Int(p.r) + Int(p.g) + Int(p.b) < 300 { n += 1 }
                }
            }
            return n
        }
        // Title band (centred at the top) has glyph pixels; a blank corner has none.
        #expect(darkPixels(Rect(x: fig.size.width / 2 - 40, y: 6, width: 80, height: 14)) > 20)
        #expect(darkPixels(Rect(x: 0, y: 0, width: 20, height: 6)) == 0)
        // The y-axis label strip on the left has glyph pixels.
        #expect(darkPixels(Rect(x: 16, y: fig.headerHeight + 20, width: 18, height: 150)) > 20)
    }
}

@Suite struct VectorAndDeterminismTests {
    @Test(arguments: ["png", "svg", "pdf"])
    func sameFigureGivesIdenticalBytes(_ ext: String) throws {
        let dir = try temporaryFolder()
        let format = try #require(OutputFormat(pathExtension: ext))
        let a = dir.appendingPathComponent("a.\(ext)"), b = dir.appendingPathComponent("b.\(ext)")
        try render(heatmapFigure(), to: a, format: format)
        try render(curvesFigure(), to: b, format: format)  // something else in between
        try render(heatmapFigure(), to: b, format: format)
        let da = try Data(contentsOf: a), db = try Data(contentsOf: b)
        #expect(da.count > 1000)
        #expect(da == db)
    }

    @Test func pdfHasHeaderOnePageAndPinnedDate() throws {
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent("h.pdf")
        try render(heatmapFigure(), to: url, format: .pdf)
        let data = try Data(contentsOf: url)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.hasPrefix("%PDF-"))
        // Cairo 1.16 writes the pinned date without the "D:" prefix; later versions add it.
        #expect(text.contains("/CreationDate (20240101000000") || text.contains("/CreationDate (D:20240101000000"))
        let pages = text.components(separatedBy: "/Type /Page").count - 1 - (text.components(separatedBy: "/Type /Pages").count - 1)
        #expect(pages == 1)
    }

    @Test func svgRootHasFigureSize() throws {
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent("h.svg")
        let fig = heatmapFigure()
        try render(fig, to: url, format: .svg)
        let text = try String(contentsOf: url, encoding: .utf8)
        let root = try #require(text.range(of: "<svg").map { String(text[$0.lowerBound...].prefix { $0 != ">" }) })
        #expect(root.contains("width=\"\(Int(fig.size.width))pt\""))
        #expect(root.contains("height=\"\(Int(fig.size.height))pt\""))
        #expect(text.contains("<image"))
        #expect(text.components(separatedBy: "<image").count - 1 <= 2)  // map + colour bar, not one rect per cell
    }
}

@Suite struct AtomicWriteAndErrorTests {
    @Test func failureLeavesNoFileAndNeverRemovesAFolder() throws {
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent("out.png")
        try FileManager.default.createDirectory(at: url.appendingPathComponent("keep"), withIntermediateDirectories: true)
        let e = #expect(throws: (any Error).self) { try render(curvesFigure(), to: url, format: .png(scale: 2)) }
        #expect("\(e.map { "\($0)" } ?? "")".contains("is a folder"))
        #expect(FileManager.default.fileExists(atPath: url.appendingPathComponent("keep").path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.png"])
    }

    @Test func successLeavesOnlyTheTarget() throws {
        let dir = try temporaryFolder()
        for ext in ["png", "svg", "pdf"] {
            try render(curvesFigure(), to: dir.appendingPathComponent("f.\(ext)"), format: OutputFormat(pathExtension: ext)!)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["f.pdf", "f.png", "f.svg"])
    }

    @Test func invalidScaleIsAnError() {
        #expect(throws: CairoError.self) { _ = try CairoCanvas(imageSize: Size(10, 10), scale: 0) }
        #expect(throws: CairoError.self) { _ = try CairoCanvas(imageSize: Size(1e7, 1e7), scale: 2) }
    }

    @Test func errorDescriptionCarriesCairoMessage() {
        do {
            _ = try CairoCanvas(imageSize: Size(1e7, 1e7), scale: 2)
            Issue.record("expected an error")
        } catch let e as CairoError {
            #expect(e.description.hasPrefix("cairo: create image surface failed: "))
            #expect(!e.message.isEmpty)
        } catch { Issue.record("unexpected \(error)") }
    }
}

@Suite struct CairoCanvasTests {
    @Test func measureUsesRealFontMetrics() throws {
        let c = try CairoCanvas(imageSize: Size(100, 100), scale: 1)
        let short = c.measure("ii", style: .tick).width, long = c.measure("WWWW", style: .tick).width
        #expect(short > 0 && long > 4 * short)
        #expect(c.measure("Title", style: TextStyle(size: 11, weight: .bold)).width > c.measure("Title", style: TextStyle(size: 11)).width)
        #expect(c.pixelSize?.width == 100)
        try c.checkStatus()
    }

    @Test func imageIsDrawnNearestNeighbour() throws {
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent("px.png")
        let c = try CairoCanvas(imageSize: Size(40, 20), scale: 1)
        c.image(PixelImage(width: 2, height: 1, pixels: [0xFF0000, 0x0000FF]), in: Rect(x: 0, y: 0, width: 40, height: 20))
        try c.writePNG(to: url)
        let img = try readPNG(url)
        #expect(img[0, 0] == RGB(hex: 0xFF0000) && img[19, 10] == RGB(hex: 0xFF0000))  // no blending at the seam
        #expect(img[20, 10] == RGB(hex: 0x0000FF) && img[39, 19] == RGB(hex: 0x0000FF))
    }
}
