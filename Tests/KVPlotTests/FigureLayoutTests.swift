import Foundation
import Testing
@testable import KVPlot

/// Layout checks that would have caught the figure defects reviewers found: text clipped at the
/// page edges, maps shrunk to strips above blank canvas, head grids laid out as one long strip,
/// fractional layer ticks, indistinguishable lines and legend keys that draw nothing like the
/// marks they name.
@Suite struct FigureLayoutTests {
    static func record(_ f: Figure) -> RecordingCanvas { let c = RecordingCanvas(size: f.size); f.draw(in: c); return c }

    static let bands = [
        ModalityBand(0 ..< 12, kind: .text, label: "text"), ModalityBand(12 ..< 76, kind: .image, label: "image 1"),
        ModalityBand(76 ..< 140, kind: .image, label: "image 2"), ModalityBand(140 ..< 600, kind: .text, label: "text"),
        ModalityBand(600 ..< 631, kind: .generated, label: "gen"),
    ]

    /// A window trace's map: 32 recorded rows (599..<631) of 631 keys.
    static func windowMatrix(rows: Int = 32, cols: Int = 631) -> [Float] {
        (0 ..< rows * cols).map { k in
            let i = k / cols + (cols - rows), j = k % cols
            return j > i ? 0 : Float(1 / Double(1 + i - j))
        }
    }

    static let figures: [(String, Figure)] = {
        let long = "a-rather-long-trace-name-for-a-reviewer (pseudo-images)"
        var out: [(String, Figure)] = []
        out.append(
            (
                "window heatmap",
                HeatmapFigure(
                    matrix: windowMatrix(), rows: 32, cols: 631, rowStart: 599, bands: bands,
                    title: "\(long): where does layer 3 attend? (mean over 32 heads)",
                    subtitle: ["rows 599..<631 (window trace: only the recorded rows), keys 0..<631; P = 600"]
                ).build()
            ))
        let panels = (0 ..< 32).map { HeatmapGridPanel(title: "L1 H\($0)", matrix: windowMatrix()) }
        var grid = HeatmapGridFigure(
            panels: panels, rows: 32, cols: 631, bands: bands, title: "\(long): where does layer 1 attend? (all 32 heads)")
        grid.rowStart = 599
        out.append(("32-head window grid", grid.build()))
        let square = (0 ..< 8).map { HeatmapGridPanel(title: "L0 H\($0)", matrix: [Float](repeating: 0.01, count: 64 * 64)) }
        out.append(("8-head square grid", HeatmapGridFigure(panels: square, rows: 64, cols: 64, title: "t").build()))
        let images = [
            PatchImage(title: "pseudo-image 1 (text tokens), 8×8", rows: 8, cols: 8),
            PatchImage(title: "pseudo-image 2 (text tokens), 8×8", rows: 8, cols: 8),
        ]
        let policies = ["h2o", "snapkv", "lookm"]
        let sub = [
            "cell: fraction of (layer, KV head) pairs keeping the patch; layers 0-29, 3 KV heads",
            "h2o: C = 32, C_act = 32 (fidelity code)", "snapkv: C = 32, C_act = 32 (fidelity code)",
            "lookm: C = 32, C_act = 37 (fidelity code)",
            "pseudo-image tokens: image spans are text tokens standing in for images (synthetic_image_tokens)",
        ]
        out.append(
            (
                "patches 2 images × 3 policies",
                PatchGridFigure(
                    policies: policies, images: images, kept: policies.map { _ in images.map { _ in [Double](repeating: 0.5, count: 64) } },
                    title: "\(long): which patches stay cached at budget 0.2?", subtitle: sub
                ).build()
            ))
        let strips = [PatchImage(title: "image 1, 1×24", rows: 1, cols: 24), PatchImage(title: "image 2, 1×24", rows: 1, cols: 24)]
        out.append(
            (
                "patches of 1 × 24 strips",
                PatchGridFigure(
                    policies: policies, images: strips, kept: policies.map { _ in strips.map { _ in [Double](repeating: 0.5, count: 24) } },
                    title: "t: which patches stay cached at budget 0.2?"
                ).build()
            ))
        let fate = PatchFateGrid(
            rows: 8, cols: 8,
            counts: (0 ..< 64).map { [$0 % 4 == 0 ? 3 : 0, $0 % 4 == 1 ? 3 : 0, $0 % 4 == 2 ? 3 : 0, $0 % 4 == 3 ? 3 : 0] })
        out.append(
            (
                "patch fate",
                PatchFateFigure(
                    policies: policies, imageTitles: images.map(\.title), grids: policies.map { _ in [fate, fate] },
                    title: "\(long): where does each image's K/V go at budget 0.2?", subtitle: sub
                ).build()
            ))
        out.append(
            (
                "patch fate, short title",
                PatchFateFigure(
                    policies: policies, imageTitles: ["image 1, 24×24"], grids: policies.map { _ in [fate] },
                    title: "t"
                ).build()
            ))
        out.append(
            (
                "one-layer modality",
                ModalityFigure(
                    layers: [3], textMean: [0.02], imageMean: [0.004], policies: policies,
                    shares: policies.map { _ in [0.7, 0.3] }, promptShare: [0.6, 0.4],
                    title: "\(long): do text or image tokens get the attention, and the cache?"
                ).build()
            ))
        let ret = policies.map {
            RetentionPanel(
                title: "\($0)   C = 32   C_act = 37   fidelity code", kept: [Double](repeating: 0.5, count: 4 * 177), rows: 4,
                merged: $0 == "lookm" ? [20, 21, 90] : [])
        }
        out.append(
            (
                "4-layer retention",
                RetentionFigure(
                    panels: ret, tokens: 177, prefillLength: 161, bands: Array(bands.prefix(2)),
                    title: "\(long): which positions does each policy keep at budget 0.2?"
                ).build()
            ))
        out.append(
            (
                "merges",
                MergeArcsFigure(
                    tokens: 161, bands: Array(bands.prefix(3)), kept: [0, 1, 150, 151],
                    merges: [MergeArc(source: 20, target: 150, value: 0.6)], excluded: [30],
                    title: "\(long): where do lookm's evicted tokens merge at budget 0.2?"
                ).build()
            ))
        let curves = ["h2o", "snapkv", "text-prior", "lookm", "streaming", "oracle"].map {
            Curve(policy: $0, x: [0.1, 0.2, 0.5], y: [0.5, 0.7, 0.9])
        }
        out.append(
            (
                "curves",
                CurvesFigure(
                    curves: curves, metric: "attention recall (share of attention mass kept, 0–1)",
                    title: "\(long): how much attention mass survives as the budget shrinks?", yRange: 0 ... 1, reference: 1
                ).build()
            ))
        let steps = (1 ... 16).map(Double.init)
        let decoding = ["h2o", "snapkv", "streaming", "lookm"].enumerated().map { k, p in
            Curve(policy: p, x: steps, y: steps.map { 0.5 + 0.1 * Double(k) + 0.005 * $0 })
        }
        out.append(
            (
                "decoding",
                DecodingFigure(
                    curves: decoding, metric: "attention recall (share of attention mass kept, 0–1)", steps: 16,
                    title: "\(long): how does each policy's loss develop over decoding?",
                    subtitle: ["budget 0.2 (C = 32, r = 16), fidelity code; recompress every 4 steps"],
                    yRange: 0 ... 1, reference: 1, recompressedAfter: [4, 8, 12]
                ).build()
            ))
        for n in [1, 2, 8] {
            out.append(
                (
                    "merge flow \(n) images",
                    mergeFlow(
                        images: n, policies: n == 2 ? ["lookm", "pivot-merge", "lookm+scope=modality"] : ["lookm", "lookm+scope=image"],
                        title: "\(long): where does evicted image information go at budget 0.2?"
                    ).build()
                ))
        }
        return out
    }()

    /// Steps are whole numbers: every x tick label of the decoding figure is an integer in 1 … 16.
    @Test func decodingTicksAreWholeSteps() {
        let c = Self.record(Self.figure("decoding"))
        let ticks = c.texts.filter { $0.style == .tick }.map(\.string)
        let xs = ticks.compactMap(Int.init).filter { $0 >= 1 }
        #expect(xs.contains(1) && xs.allSatisfy { $0 <= 16 }, "\(ticks)")
        #expect(!ticks.contains { $0.contains(".") && Double($0).map { $0 > 1 } == true }, "no fractional step: \(ticks)")
        for p in ["h2o", "snapkv", "streaming", "lookm", "full cache"] { #expect(c.text(p) != nil, "legend \(p)") }
    }

    /// A merge-flow figure over text and `images` images: row s = image s−1 sends s to text, 1 to
    /// itself and s − 1 to dropped; text sends 2 to text.
    static func mergeFlow(images: Int, policies: [String], title: String) -> MergeFlowFigure {
        let groups = ["text"] + (0 ..< images).map { "image \($0)" }
        let targets = groups + ["dropped"]
        let values = groups.indices.map { s in
            targets.indices.map { t -> Double in
                if s == 0 { return t == 0 ? 2 : 0 }
                return t == 0 ? Double(s) : t == s ? 1 : t == targets.count - 1 ? Double(s - 1) : 0
            }
        }
        let panels = policies.map { MergeFlowPanel(title: "\($0)   C = 465   C_act = 600", values: values) }
        return MergeFlowFigure(
            sources: groups, targets: targets, panels: panels, total: { String(format: "%.1f%%", $0) }, title: title,
            subtitle: [
                "rows: evicted tokens by group; columns: the group of the kept token they merged into, or dropped; cells: share of the row",
                "budget 0.2, fidelity code",
            ])
    }

    static func figure(_ name: String) -> Figure { figures.first { $0.0 == name }!.1 }

    @Test("no text or shape leaves the page", arguments: figures.indices)
    func nothingClipped(index: Int) {
        let (name, f) = Self.figures[index]
        let audit = LayoutAudit(f)
        let problems = audit.problems().filter { !$0.contains(" overlaps ") }
        #expect(problems.isEmpty, "\(name): \(problems.prefix(5).joined(separator: "; "))")
        #expect(!audit.textBoxes.isEmpty, "\(name): nothing written")
    }

    @Test("title-block text does not overlap anything else", arguments: figures.indices)
    func titleBlockClear(index: Int) {
        let (name, f) = Self.figures[index]
        let audit = LayoutAudit(f)
        let block = Set([f.title] + f.subtitle)
        let bad = audit.overlappingText().filter { block.contains($0.0.string) || block.contains($0.1.string) }
        #expect(bad.isEmpty, "\(name): \(bad.prefix(3).map { "\($0.0.string) / \($0.1.string)" })")
    }

    @Test("content fills the page: no band of blank canvas", arguments: figures.indices)
    func contentFillsPage(index: Int) throws {
        let (name, f) = Self.figures[index]
        let content = try #require(LayoutAudit(f).contentBounds)
        #expect(f.size.height - content.maxY < 30, "\(name): \(f.size.height - content.maxY) pt blank under the content")
        // Sideways, the title block may be centred with some slack (its width is estimated).
        let slack = max(40, 0.1 * f.size.width)
        #expect(content.minX < slack && f.size.width - content.maxX < slack + 20, "\(name): content \(content) on a \(f.size) page")
    }

    @Test func windowHeatmapMapIsNotAStrip() throws {
        let f = Self.figure("window heatmap")
        let c = Self.record(f)
        let map = try #require(c.images.first).rect
        #expect(map.height >= HeatmapFigure.minimumMapHeight - 0.01)
        #expect(map.height / f.size.height > 0.4, "map \(map.height) pt on a \(f.size.height) pt page")
        #expect(f.subtitle.contains { $0.contains("taller than wide") })  // the stretch is stated
    }

    @Test func headGridShapeFollowsTheHeadCount() {
        #expect(HeatmapGridFigure.gridShape(count: 8, panelAspect: 1) == (2, 4))
        #expect(HeatmapGridFigure.gridShape(count: 32, panelAspect: 1) == (4, 8))
        #expect(HeatmapGridFigure.gridShape(count: 9, panelAspect: 1) == (3, 3))
        // Wide window-trace panels stack in more rows than columns.
        let wide = HeatmapGridFigure.gridShape(count: 32, panelAspect: 0.3)
        #expect(wide.rows > wide.cols && wide.rows * wide.cols == 32)
        let grid = Self.figure("8-head square grid")
        #expect(grid.size.width < 2.6 * grid.size.height, "8 square heads: \(grid.size)")
    }

    @Test func windowGridPanelsAreTallerThanTheirBand() throws {
        let c = Self.record(Self.figure("32-head window grid"))
        let maps = c.images.map(\.rect).filter { $0.width > 30 }  // not the colour bar
        #expect(maps.count == 32)
        #expect(maps.allSatisfy { $0.height >= HeatmapGridFigure.minimumPanelHeight - 0.01 })
    }

    @Test("merge flow: row shares in the cells, every label whole and apart, 1 to 8 images", arguments: [1, 2, 8])
    func mergeFlowCells(images: Int) throws {
        let f = Self.figure("merge flow \(images) images")
        let audit = LayoutAudit(f)
        #expect(audit.problems().isEmpty, "\(audit.problems().prefix(3))")
        let c = Self.record(f)
        let n = f.panels.count - 1  // the last panel is the colour bar
        // Image k sends k to text, 1 to itself, k − 1 to dropped, shown as shares of its row:
        // image 0 50 % | 50 % | 0; image 1 50 % | 25 % | 25 %; text 100 % to text.
        #expect(c.texts.filter { $0.string == "100%" }.count == n)
        #expect(c.texts.filter { $0.string == "25%" }.count == (images >= 2 ? 2 * n : 0))
        #expect(c.texts.filter { $0.string == "50%" }.count >= 2 * n)
        #expect(c.texts.filter { $0.string == "dropped" }.count == f.panels.count - 1)
        #expect(c.texts.contains { $0.string == "image \(images - 1)" })
        // Row totals: text 2, image k: 2k.
        #expect(c.texts.contains { $0.string == "Σ \(String(format: "%.1f%%", Double(2 * images)))" })
        #expect(f.size.width <= 1000 + 1, "\(f.size)")
    }

    @Test func oneLayerModalityTicksAreWholeLayers() {
        let labels = Set(Self.record(Self.figure("one-layer modality")).texts.filter { $0.style == .tick }.map(\.string))
        #expect(labels.contains("3"))
        #expect(!labels.contains { $0.contains(".") && Double($0).map { $0 >= 2 && $0 <= 4 } == true }, "\(labels)")
    }

    @Test func modalityLegendsSitOnTheSameSide() throws {
        let c = Self.record(Self.figure("one-layer modality"))
        let text = try #require(c.text("text token")), bar = try #require(c.text("text"))
        // Both legends are to the right of their panel, at the panel's top.
        #expect(abs(text.point.y - bar.point.y) < 1)
    }

    @Test func fourLayerRetentionLabelsEveryLayer() {
        let c = Self.record(Self.figure("4-layer retention"))
        for l in ["0", "1", "2", "3"] { #expect(c.texts.contains { $0.string == l }, "layer \(l) unlabelled") }
    }

    @Test func mergedTicksSitInTheirOwnLaneNotOnTheBand() throws {
        let c = Self.record(Self.figure("4-layer retention"))
        let ticks = c.strokes(Palette.merged)
        let tick = try #require(ticks.first)
        let image = c.filledRects(BandKind.image.color)
        let box = try #require(LayoutAudit.bounds(tick))
        #expect(!image.contains { $0.maxY > box.minY + 0.01 && $0.minY < box.maxY - 0.01 && $0.minX < box.maxX && $0.maxX > box.minX })
    }

    @Test func mergeLegendDrawsTheMarksItNames() throws {
        let c = Self.record(Self.figure("merges"))
        // Kept positions are 0.6 pt ticks in the kept colour; the legend's kept key is the same.
        let kept = c.operations.compactMap { op -> StrokeStyle? in
            if case let .stroke(_, s) = op, s.color.rgb == Palette.kept { return s }
            return nil
        }
        #expect(kept.count >= 2 && kept.allSatisfy { $0.width == 0.6 })
        #expect(c.filledRects(Palette.kept).isEmpty)  // no square: none is drawn on the axis either
        #expect(c.text("text") != nil && c.text("image 1") != nil)  // the band is labelled
        // The filtered-out key is a grey cross like the ones on the axis, with no line through it.
        let grey = c.strokes(ArcChart.excludedColor)
        #expect(grey.count == 2 && grey.allSatisfy { $0.elements.count == 4 })
    }

    @Test func equalLinesStayVisible() throws {
        // lookm and text-prior share a colour; with equal values both must still show.
        let curves = [
            Curve(policy: "text-prior", style: .declared(color: 0xD55E00, merge: nil), x: [0.1, 0.5], y: [0.4, 0.9]),
            Curve(policy: "lookm", style: .declared(color: 0xD55E00, merge: "pivotal"), x: [0.1, 0.5], y: [0.4, 0.9]),
        ]
        let f = CurvesFigure(curves: curves, metric: "recall", title: "t", yRange: 0 ... 1).build()
        let c = Self.record(f)
        let colour = RGB(hex: 0xD55E00)
        let dots = c.operations.filter {
            if case let .fill(p, col) = $0 { return col.rgb == colour && p.elements.count > 4 } else { return false }
        }
        let rings = c.operations.filter {
            if case let .stroke(p, s) = $0 { return s.color.rgb == colour && p.asRect != nil } else { return false }
        }
        #expect(dots.count >= 2 + 1, "filled circles: two points plus the legend key")
        #expect(rings.count >= 2 + 1, "open squares: two points plus the legend key")
        // The dashed line is drawn after the solid one, so its gaps show the line beneath.
        let lines = c.operations.compactMap { op -> StrokeStyle? in
            if case let .stroke(p, s) = op, s.color.rgb == colour, p.elements.count == 2, s.width == 1.5 { return s }
            return nil
        }
        #expect(lines.count >= 2)
    }

    @Test func legendKeysDrawTheirSeriesStyle() throws {
        let f = Self.figure("curves")
        let c = Self.record(f)
        let chart = try #require(f.panels.first?.chart as? LineChart)
        for s in chart.series {
            let label = try #require(c.text(s.label))
            // A stroke in the series colour and dash ends just left of the label…
            let key = c.operations.contains { op in
                guard case let .stroke(p, st) = op, st.color.rgb == s.color, st.dash == s.dash, p.elements.count == 2,
                    case let .line(end) = p.elements[1]
                else { return false }
                return abs(end.y - label.point.y) < 0.01 && end.x < label.point.x && label.point.x - end.x < 6
            }
            #expect(key, "\(s.label): no line key")
            // …and a marker of the series shape sits on it.
            if s.marker != .none {
                let marked = c.operations.contains { op in
                    switch op {
                    case let .fill(p, col):
                        return col.rgb == s.color && LayoutAudit.bounds(p).map { abs($0.midY - label.point.y) < 0.5 } == true
                            && s.marker == .circle
                    case let .stroke(p, st):
                        return st.color.rgb == s.color && st.width == 1
                            && LayoutAudit.bounds(p).map { abs($0.midY - label.point.y) < 1.5 } == true
                    default: return false
                    }
                }
                #expect(marked, "\(s.label): no \(s.marker) on its key")
            }
        }
    }

    @Test func titleBlockShrinksRatherThanClips() {
        let f = Figure(size: Size(200, 100), title: String(repeating: "very long title ", count: 3), subtitle: ["short"])
        #expect(LayoutAudit(f).clippedText().isEmpty)
        #expect(Figure.titleBlockWidth(title: f.title, subtitle: f.subtitle) > 200)
    }

    @Test func pageSizeIsWholePoints() {
        let f = Figure(size: Size(100.3, 50.6), title: "t")
        #expect(f.size == Size(101, 51))
    }
}
