import Foundation
import KVCairo
import KVPlot
import Testing

/// Real PNG checks of figure layout: the page edges are background (nothing clipped there, no
/// stray line under the content) and the content reaches down to the bottom of the page.
@Suite struct LayoutPixelTests {
    /// A window trace's map: `rows` recorded rows at the end of `cols` keys.
    static func window(rows: Int, cols: Int) -> [Float] {
        (0 ..< rows * cols).map { k in
            let i = k / cols + (cols - rows), j = k % cols
            return j > i ? 0 : Float(1 / Double(1 + i - j))
        }
    }

    static let figures: [(String, Figure)] = {
        let bands = [
            ModalityBand(0 ..< 10, kind: .text, label: "text"), ModalityBand(10 ..< 74, kind: .image, label: "image 1", isPseudo: true),
            ModalityBand(74 ..< 177, kind: .text, label: "text"),
        ]
        var grid = HeatmapGridFigure(
            panels: (0 ..< 9).map { HeatmapGridPanel(title: "L3 H\($0)", matrix: window(rows: 24, cols: 177)) },
            rows: 24, cols: 177, bands: bands,
            title: "a trace with a long name (pseudo-images): where does layer 3 attend? (all 9 heads)",
            subtitle: ["rows 153..<177 (window trace: only the recorded rows), keys 0..<177; P = 161"], panelSize: 200)
        grid.rowStart = 153
        let heatmap = HeatmapFigure(
            matrix: window(rows: 24, cols: 177), rows: 24, cols: 177, rowStart: 153, bands: bands,
            title: "a trace: where does layer 3 attend? (mean over 9 heads)")
        let policies = ["h2o", "snapkv", "lookm"]
        let images = [
            PatchImage(title: "pseudo-image 1 (text tokens), 8×8", rows: 8, cols: 8),
            PatchImage(title: "pseudo-image 2 (text tokens), 8×8", rows: 8, cols: 8),
        ]
        let patches = PatchGridFigure(
            policies: policies, images: images, kept: policies.map { _ in images.map { _ in (0 ..< 64).map { Double($0) / 63 } } },
            title: "a trace: which patches stay cached at budget 0.2?",
            subtitle: [
                "h2o: C = 32, C_act = 32 (fidelity code)   snapkv: C = 32, C_act = 32 (fidelity code)   lookm: C = 32, C_act = 37 (fidelity code)"
            ])
        return [("window grid", grid.build()), ("window heatmap", heatmap.build()), ("patches", patches.build())]
    }()

    static func isWhite(_ p: RGB) -> Bool { p.r >= 250 && p.g >= 250 && p.b >= 250 }

    @Test("page edges are blank and the content reaches the bottom", arguments: figures.indices)
    func edgesAndFill(index: Int) throws {
        let (name, fig) = Self.figures[index]
        let url = try temporaryFolder().appendingPathComponent("f.png")
        try render(fig, to: url, format: .png(scale: 2))
        let img = try readPNG(url)
        #expect(img.width == Int(fig.size.width * 2) && img.height == Int(fig.size.height * 2))
        // The outermost two pixels all round: text clipped at an edge, or a stray line, would show here.
        var edge: [(Int, Int)] = []
        for x in 0 ..< img.width { for y in [0, 1, img.height - 2, img.height - 1] where !Self.isWhite(img[x, y]) { edge.append((x, y)) } }
        for y in 0 ..< img.height { for x in [0, 1, img.width - 2, img.width - 1] where !Self.isWhite(img[x, y]) { edge.append((x, y)) } }
        #expect(edge.isEmpty, "\(name): \(edge.count) non-white edge pixels, first \(edge.prefix(3))")
        // The lowest drawn pixel row is close to the bottom: no blank band under the content.
        var lowest = 0
        for y in stride(from: img.height - 1, through: 0, by: -1) where (0 ..< img.width).contains(where: { !Self.isWhite(img[$0, y]) }) {
            lowest = y; break
        }
        #expect(img.height - lowest < 60, "\(name): \(img.height - lowest) blank pixel rows at the bottom")
    }

    @Test func aPageWithAFractionalSizeHasNoStrayLastRow() throws {
        var fig = Figure(size: Size(80, 40), title: "t")
        fig.size = Size(80.25, 40.25)  // not whole points: the last pixel row is partly outside the page
        let url = try temporaryFolder().appendingPathComponent("f.png")
        try render(fig, to: url, format: .png(scale: 2))
        let img = try readPNG(url)
        #expect(img.height == 81)
        #expect((0 ..< img.width).allSatisfy { Self.isWhite(img[$0, img.height - 1]) })
    }
}
