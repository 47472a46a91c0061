import Foundation

/// Where one patch's key and value went when the cache was compressed.
public enum PatchFate: Int, Sendable, Hashable, CaseIterable {
    /// The position keeps its own slot.
    case kept
    /// Evicted, and folded into a kept slot holding a text token.
    case mergedIntoText
    /// Evicted, and folded into a kept slot holding an image token (of any image).
    case mergedIntoImage
    /// Evicted and dropped: its K/V is gone.
    case dropped

    /// Legend label.
    public var label: String {
        switch self {
        case .kept: return "kept"
        case .mergedIntoText: return "merged into text"
        case .mergedIntoImage: return "merged into image"
        case .dropped: return "dropped"
        }
    }

    /// Short label for the share line under each panel.
    public var shortLabel: String {
        switch self {
        case .kept: return "kept"
        case .mergedIntoText: return "→text"
        case .mergedIntoImage: return "→image"
        case .dropped: return "dropped"
        }
    }

    /// Cell colour: kept `#3B528B` and dropped `#E5E5E5` as the retention states; merged into
    /// text `#F28E2B` (the merged orange); merged into image `#B07AA1` (purple). Distinct in
    /// hue and in lightness order, so a reader tells them apart without the legend colours.
    public var color: RGB {
        switch self {
        case .kept: return Palette.kept
        case .mergedIntoText: return Palette.merged
        case .mergedIntoImage: return RGB(hex: 0xB07AA1)
        case .dropped: return Palette.evicted
        }
    }
}

/// One patch grid of a fate figure: per patch, how often each fate happened over the
/// (layer, KV head) pairs counted.
public struct PatchFateGrid: Sendable, Hashable {
    public var rows: Int
    public var cols: Int
    /// `counts[patch][fate.rawValue]`, row-major patches.
    public var counts: [[Int]]

    public init(rows: Int, cols: Int, counts: [[Int]]) {
        precondition(
            counts.count == rows * cols && counts.allSatisfy { $0.count == PatchFate.allCases.count }, "PatchFateGrid: counts shape")
        self.rows = rows; self.cols = cols; self.counts = counts
    }

    /// Each patch's most frequent fate (ties go to the earlier case: kept, into text, into image, dropped).
    public var majority: [PatchFate] {
        counts.map { c in
            var best = 0
            for f in c.indices where c[f] > c[best] { best = f }
            return PatchFate(rawValue: best)!
        }
    }

    /// The share of each fate over every patch and pair (sums to 1; zeros when nothing was counted).
    public var shares: [Double] {
        var total = [Int](repeating: 0, count: PatchFate.allCases.count)
        for c in counts { for f in c.indices { total[f] += c[f] } }
        let n = total.reduce(0, +)
        return total.map { n > 0 ? Double($0) / Double(n) : 0 }
    }

    /// The majority picture, one pixel per patch.
    public var raster: PixelImage {
        PixelImage(width: cols, height: rows, pixels: majority.map { $0.color.hex })
    }

    /// "kept 12%  →text 30%" / "→image 50%  dropped 8%": the shares on two lines.
    public var shareLines: [String] {
        let s = shares
        func item(_ f: PatchFate) -> String { "\(f.shortLabel) \(Int((s[f.rawValue] * 100).rounded()))%" }
        return ["\(item(.kept))  \(item(.dropped))", "\(item(.mergedIntoText))  \(item(.mergedIntoImage))"]
    }
}

/// The "where each image's K/V went" figure: rows = policies, columns = images; each patch
/// drawn in the colour of its most frequent fate over the counted (layer, KV head) pairs —
/// kept, merged into a text slot, merged into an image slot, dropped — with the share of each
/// fate over the whole image under the panel, and one legend.
public struct PatchFateFigure: Sendable {
    public var policies: [String]
    /// The style of each policy (its colour labels the row); default: hashed from the label.
    public var styles: [PolicyStyle]?
    /// Column titles, one per image.
    public var imageTitles: [String]
    /// `grids[policy][image]`.
    public var grids: [[PatchFateGrid]]
    public var title: String
    public var subtitle: [String]
    public var cellSize: Double

    public init(
        policies: [String], imageTitles: [String], grids: [[PatchFateGrid]], title: String,
        subtitle: [String] = [], cellSize: Double = 110
    ) {
        precondition(grids.count == policies.count && grids.allSatisfy { $0.count == imageTitles.count }, "PatchFateFigure: grids shape")
        self.policies = policies; self.imageTitles = imageTitles; self.grids = grids; self.title = title
        self.subtitle = subtitle; self.cellSize = cellSize
    }

    public func build() -> Figure {
        let header = Figure.headerHeight(subtitleLines: subtitle.count, hasTitle: !title.isEmpty)
        let labelW = 74.0, gap = 14.0, colTitle = 12.0, shareH = 20.0
        let legendW = Legend.keyWidth + 4 + (PatchFate.allCases.map { Figure.textWidth($0.label, style: .legend) }.max() ?? 0) + 8
        let panelW = max(cellSize, imageTitles.map { Figure.textWidth($0, style: .panelTitle) }.max() ?? 0)
        let contentW = labelW + Double(imageTitles.count) * (panelW + gap) + legendW
        let width = max(contentW, Figure.titleBlockWidth(title: title, subtitle: subtitle))
        let dx = (width - contentW) / 2
        let aspect = grids.flatMap { $0 }.map { Double($0.rows) / Double(max($0.cols, 1)) }.max() ?? 1
        let panelH = max(8, cellSize * min(1, aspect))
        let rowH = panelH + shareH + gap
        let legendH = Double(PatchFate.allCases.count) * 11 + 4
        let height = header + colTitle + max(Double(policies.count) * rowH - gap, legendH) + 6
        var fig = Figure(size: Size(width, height), title: title, subtitle: subtitle)
        let top = header + colTitle
        for (pi, policy) in policies.enumerated() {
            let y = top + Double(pi) * rowH
            let style = styles?[pi] ?? PolicyStyle.of(policy)
            fig.add(
                TextItemChart(policy, style: TextStyle(size: 8, weight: .bold, color: style.color), anchor: .right),
                in: Rect(x: dx + labelW - 6, y: y + panelH / 2, width: 0, height: 0))
            for (ii, grid) in grids[pi].enumerated() {
                let x = dx + labelW + Double(ii) * (panelW + gap)
                let chart = ImageChart(image: grid.raster)
                let frame = Rect(x: x + (panelW - cellSize) / 2, y: y, width: cellSize, height: panelH)
                fig.add(chart, in: frame)
                let r = chart.imageRect(in: frame)
                for (k, line) in grid.shareLines.enumerated() {
                    fig.add(
                        TextItemChart(line, style: TextStyle(size: 7, color: .darkGray), anchor: .top),
                        in: Rect(x: r.midX, y: r.maxY + 3 + Double(k) * 9, width: 0, height: 0))
                }
                if pi == 0 {
                    fig.add(
                        TextItemChart(imageTitles[ii], style: .panelTitle, anchor: .bottom),
                        in: Rect(x: r.midX, y: top - 3, width: 0, height: 0))
                }
            }
        }
        let legend = Legend(PatchFate.allCases.map { LegendEntry($0.label, key: .swatch($0.color)) })
        fig.add(legend, in: Rect(x: dx + labelW + Double(imageTitles.count) * (panelW + gap), y: top, width: legendW, height: legendH))
        return fig
    }
}
