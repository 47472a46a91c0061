import Foundation

/// Builds the attention heatmap figure (FIGURES.md §2.1) from a plain row-major matrix.
///
/// Query rows run top to bottom, keys left to right, cells are square. Cells above the diagonal
/// (causal) and NaN cells are drawn in the mask colour. Modality bands run along both axes and
/// axis ticks mark span boundaries. When a cell would be smaller than a device pixel the map is
/// pooled `k × k` (`k = ⌈T / limit⌉`) and the subtitle says so.
public struct HeatmapFigure: Sendable {
    public var data: HeatmapData
    public var causal: Bool
    public var bands: [ModalityBand]
    public var normalization: Normalization
    public var colorMap: ColorMap
    public var title: String
    public var subtitle: [String]
    public var xLabel: String
    public var yLabel: String
    public var colorBarLabel: String
    public var pooling: HeatmapData.Pooling
    /// Largest number of cells per side before pooling; nil = the map side in device pixels at
    /// `scale` (2 by default).
    public var poolLimit: Int?
    public var scale: Double
    public var size: Size

    /// - Parameters:
    ///   - matrix: `rows * cols` attention weights, row-major, row 0 = first recorded query.
    ///   - rows, cols: matrix shape (`cols` = key positions `0 ..< cols`).
    ///   - rowStart: absolute position of the first row (window traces).
    ///   - causal: mask the upper triangle (key position > query position).
    ///   - bands: modality spans in absolute positions.
    ///   - normalization: default log `[1e-4, 1]`.
    ///   - colorMap: default viridis.
    ///   - title, subtitle: the title block (subtitle lines state transforms).
    ///   - colorBarLabel: defaults to "attention weight" plus ", log" for log scales.
    ///   - pooling, poolLimit, scale: down-sampling (see type docs).
    ///   - size: page size in points.
    public init(
        matrix: [Float], rows: Int, cols: Int, rowStart: Int = 0, causal: Bool = true, bands: [ModalityBand] = [],
        normalization: Normalization = .log(1e-4 ... 1), colorMap: ColorMap = .viridis, title: String,
        subtitle: [String] = [], xLabel: String = "key position", yLabel: String = "query position",
        colorBarLabel: String? = nil, pooling: HeatmapData.Pooling = .max, poolLimit: Int? = nil,
        scale: Double = 2, size: Size = Size(480, 430)
    ) {
        self.data = HeatmapData(values: matrix, rows: rows, cols: cols, rowStart: rowStart)
        self.causal = causal; self.bands = bands; self.normalization = normalization; self.colorMap = colorMap
        self.title = title; self.subtitle = subtitle; self.xLabel = xLabel; self.yLabel = yLabel
        self.colorBarLabel = colorBarLabel ?? ("attention weight" + (normalization.isLog ? ", log" : ""))
        self.pooling = pooling; self.poolLimit = poolLimit; self.scale = scale; self.size = size
    }

    /// The same from a `Double` matrix.
    public init(
        matrix: [Double], rows: Int, cols: Int, rowStart: Int = 0, causal: Bool = true, bands: [ModalityBand] = [],
        normalization: Normalization = .log(1e-4 ... 1), colorMap: ColorMap = .viridis, title: String,
        subtitle: [String] = [], xLabel: String = "key position", yLabel: String = "query position",
        colorBarLabel: String? = nil, pooling: HeatmapData.Pooling = .max, poolLimit: Int? = nil,
        scale: Double = 2, size: Size = Size(480, 430)
    ) {
        self.init(
            matrix: matrix.map(Float.init), rows: rows, cols: cols, rowStart: rowStart, causal: causal, bands: bands,
            normalization: normalization, colorMap: colorMap, title: title, subtitle: subtitle, xLabel: xLabel,
            yLabel: yLabel, colorBarLabel: colorBarLabel, pooling: pooling, poolLimit: poolLimit, scale: scale, size: size)
    }

    static let colorBarWidth = 62.0

    /// The figure.
    public func build() -> Figure {
        var sub = subtitle
        let probe = HeatmapChart(data: data, bands: bands)
        // Provisional header (one more line in case pooling is noted).
        let header = Figure.headerHeight(subtitleLines: sub.count + 1, hasTitle: !title.isEmpty)
        let chartFrame = Rect(x: 6, y: header, width: size.width - 6 - Self.colorBarWidth - 10, height: size.height - header - 4)
        let area = chartFrame.inset(by: probe.insets)
        let side = min(area.width, area.height)
        let limit = poolLimit ?? max(1, Int(side * scale))
        let k = HeatmapData.poolFactor(rows: data.rows, cols: data.cols, limit: limit)
        var d = data
        if k > 1 {
            d = data.pooled(k, mode: pooling, causal: causal)
            sub.append(pooling == .max ? "max-pooled \(k)×\(k)" : "mean-pooled \(k)×\(k) (causal entries)")
        }
        let chart = HeatmapChart(
            data: d, normalization: normalization, colorMap: colorMap, mask: causal ? .causal : .none,
            bands: bands, xLabel: xLabel, yLabel: yLabel)
        let plot = chart.plotRect(in: chartFrame)
        var fig = Figure(size: size, title: title, subtitle: sub)
        fig.add(chart, in: chartFrame)
        let bar = ColorBar(normalization: normalization, colorMap: colorMap, label: colorBarLabel)
        fig.add(bar, in: Rect(x: plot.maxX + 12, y: plot.minY, width: Self.colorBarWidth, height: plot.height))
        return fig
    }
}
