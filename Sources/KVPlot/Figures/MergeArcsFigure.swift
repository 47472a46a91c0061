import Foundation

/// Builds the merge view: a token axis with arcs from each evicted position to
/// the position of the slot it merged into, coloured by cosine similarity (viridis, colour bar),
/// width 0.5 pt, alpha 0.6; kept positions as ticks below the axis; evicted tokens the filter
/// left out as grey crosses.
public struct MergeArcsFigure: Sendable {
    public var tokens: Int
    public var bands: [ModalityBand]
    public var kept: [Int]
    public var merges: [MergeArc]
    public var excluded: [Int]
    public var range: Range<Int>?
    public var normalization: Normalization
    public var colorMap: ColorMap
    public var title: String
    public var subtitle: [String]
    public var colorBarLabel: String
    public var size: Size

    /// - Parameters:
    ///   - tokens: `P`; the axis is `0 ..< P` unless `range` zooms.
    ///   - bands: modality spans for the strip.
    ///   - kept: kept positions.
    ///   - merges: (source, target position, cosine) per merged eviction.
    ///   - excluded: evicted positions the merge filter left out.
    ///   - range: zoom (`--range a:b`).
    ///   - normalization: colour scale of the cosine (default linear 0…1).
    public init(
        tokens: Int, bands: [ModalityBand] = [], kept: [Int], merges: [MergeArc], excluded: [Int] = [],
        range: Range<Int>? = nil, normalization: Normalization = .linear(0 ... 1), colorMap: ColorMap = .viridis,
        title: String, subtitle: [String] = [], colorBarLabel: String = "cosine similarity", size: Size = Size(620, 260)
    ) {
        self.tokens = tokens; self.bands = bands; self.kept = kept; self.merges = merges; self.excluded = excluded
        self.range = range; self.normalization = normalization; self.colorMap = colorMap; self.title = title
        self.subtitle = subtitle; self.colorBarLabel = colorBarLabel; self.size = size
    }

    public func build() -> Figure {
        let size = Size(max(self.size.width, Figure.titleBlockWidth(title: title, subtitle: subtitle)), self.size.height)
        var fig = Figure(size: size, title: title, subtitle: subtitle)
        let top = fig.headerHeight
        let cbW = 62.0
        let domain = range.map { max(0, $0.lowerBound) ..< min(tokens, $0.upperBound) } ?? 0 ..< tokens
        let chart = ArcChart(
            domain: domain, bands: bands, kept: kept, arcs: merges, excluded: excluded,
            normalization: normalization, colorMap: colorMap)
        let frame = Rect(x: 4, y: top, width: size.width - 8 - cbW - 8, height: size.height - top - 18)
        fig.add(chart, in: frame)
        let plot = chart.plotRect(in: frame)
        // Legend entries only for marks that are drawn.
        var entries = [LegendEntry("kept (ticks under the strip)", key: .tick(Palette.kept))]
        if !excluded.isEmpty {
            entries.append(LegendEntry("not merged (filtered)", key: .marker(ArcChart.excludedColor, .cross, size: ArcChart.excludedSize)))
        }
        let legend = Legend(entries, layout: .rows)
        fig.add(legend, in: Rect(x: plot.minX, y: frame.maxY + 2, width: plot.width, height: 11))
        let bar = ColorBar(normalization: normalization, colorMap: colorMap, label: colorBarLabel)
        fig.add(bar, in: Rect(x: frame.maxX + 8, y: plot.minY, width: cbW, height: plot.height))
        return fig
    }
}
