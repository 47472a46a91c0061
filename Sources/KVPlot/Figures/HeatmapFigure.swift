import Foundation

/// Builds the attention heatmap figure from a plain row-major matrix.
///
/// Query rows run top to bottom, keys left to right, cells are square. Cells above the diagonal
/// (causal) and NaN cells are drawn in the mask colour. Modality bands run along both axes and
/// axis ticks mark span boundaries. When a cell would be smaller than a device pixel the map is
/// pooled `k × k` (`k = ⌈T / limit⌉`) and the subtitle says so.
public struct HeatmapFigure: Sendable {
    public var data: HeatmapData
    /// The mask, bands, colours and pooling (as the grid heatmap's).
    public var look: HeatmapLook
    public var title: String
    public var subtitle: [String]
    public var xLabel: String
    public var yLabel: String
    /// Largest number of cells per side before pooling; nil = the map side in device pixels at
    /// `scale` (2 by default).
    public var poolLimit: Int?
    public var scale: Double
    /// The page; nil sizes it to the map (``mapSize(rows:cols:)``) and the title block.
    public var size: Size?

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
    ///   - size: page size in points; nil = sized to the content.
    public init(
        matrix: [Float], rows: Int, cols: Int, rowStart: Int = 0, causal: Bool = true, bands: [ModalityBand] = [],
        normalization: Normalization = .log(1e-4 ... 1), colorMap: ColorMap = .viridis, title: String,
        subtitle: [String] = [], xLabel: String = "key position", yLabel: String = "query position",
        colorBarLabel: String? = nil, pooling: HeatmapData.Pooling = .max, poolLimit: Int? = nil,
        scale: Double = 2, size: Size? = nil
    ) {
        self.data = HeatmapData(values: matrix, rows: rows, cols: cols, rowStart: rowStart)
        self.look = HeatmapLook(
            causal: causal, bands: bands, normalization: normalization, colorMap: colorMap, colorBarLabel: colorBarLabel,
            pooling: pooling)
        self.title = title; self.subtitle = subtitle; self.xLabel = xLabel; self.yLabel = yLabel
        self.poolLimit = poolLimit; self.scale = scale; self.size = size
    }

    /// The same from a `Double` matrix.
    public init(
        matrix: [Double], rows: Int, cols: Int, rowStart: Int = 0, causal: Bool = true, bands: [ModalityBand] = [],
        normalization: Normalization = .log(1e-4 ... 1), colorMap: ColorMap = .viridis, title: String,
        subtitle: [String] = [], xLabel: String = "key position", yLabel: String = "query position",
        colorBarLabel: String? = nil, pooling: HeatmapData.Pooling = .max, poolLimit: Int? = nil,
        scale: Double = 2, size: Size? = nil
    ) {
        self.init(
            matrix: matrix.map(Float.init), rows: rows, cols: cols, rowStart: rowStart, causal: causal, bands: bands,
            normalization: normalization, colorMap: colorMap, title: title, subtitle: subtitle, xLabel: xLabel,
            yLabel: yLabel, colorBarLabel: colorBarLabel, pooling: pooling, poolLimit: poolLimit, scale: scale, size: size)
    }

    static let colorBarWidth = 62.0
    /// The long side of the map, in points.
    public static let mapSide = 420.0
    /// Shortest map height: a wide map (a window trace's few recorded rows) is stretched to it,
    /// cells drawn taller than wide, instead of shrinking to a strip; the subtitle says so.
    public static let minimumMapHeight = 120.0

    /// The map's size for `rows × cols` cells: square cells with the long side ``mapSide``, the
    /// height raised to ``minimumMapHeight`` (then `stretch` > 1 says how much taller than
    /// wide the cells are), the width at least 120 pt for tall crops.
    public static func mapSize(rows: Int, cols: Int) -> (width: Double, height: Double, stretch: Double) {
        let a = Double(max(rows, 1)) / Double(max(cols, 1))
        if a <= 1 {
            let square = mapSide * a
            let h = max(square, minimumMapHeight)
            return (mapSide, h, h / square)
        }
        let square = mapSide / a
        let w = max(square, 120)
        return (w, mapSide, square / w)
    }

    /// The figure.
    public func build() -> Figure {
        var sub = subtitle
        let probe = HeatmapChart(data: data, bands: look.bands)
        let map = Self.mapSize(rows: data.rows, cols: data.cols)
        let stretched = abs(map.stretch - 1) > 0.05
        let limit = poolLimit ?? max(1, Int(max(map.width, map.height) * scale))
        let k = HeatmapData.poolFactor(rows: data.rows, cols: data.cols, limit: limit)
        let d = look.pooled(data, by: k)
        if let note = look.poolNote(k) { sub.append(note) }
        if stretched {
            sub.append(
                map.stretch > 1
                    ? HeatmapData.stretchNote(map.stretch)
                    : "columns drawn \(String(format: "%.1f", 1 / map.stretch))× wider than tall")
        }
        let header = Figure.headerHeight(subtitleLines: sub.count, hasTitle: !title.isEmpty)
        let insets = probe.insets
        let contentW = 6 + insets.left + map.width + insets.right + 12 + Self.colorBarWidth + 10
        let page =
            size
            ?? Size(
                max(contentW, Figure.titleBlockWidth(title: title, subtitle: sub)),
                header + insets.top + map.height + insets.bottom + 4)
        let dx = size == nil ? max(0, (page.width - contentW) / 2) : 0
        let chartFrame =
            size == nil
            ? Rect(x: 6 + dx, y: header, width: insets.left + map.width + insets.right, height: insets.top + map.height + insets.bottom)
            : Rect(x: 6, y: header, width: page.width - 6 - Self.colorBarWidth - 10, height: page.height - header - 4)
        let chart = HeatmapChart(
            data: d, normalization: look.normalization, colorMap: look.colorMap, mask: look.mask,
            bands: look.bands, xLabel: xLabel, yLabel: yLabel, squareCells: !stretched || size != nil)
        let plot = chart.plotRect(in: chartFrame)
        var fig = Figure(size: page, title: title, subtitle: sub)
        fig.add(chart, in: chartFrame)
        fig.add(look.colorBar, in: Rect(x: plot.maxX + 12, y: plot.minY, width: Self.colorBarWidth, height: plot.height))
        return fig
    }
}

/// How a heatmap draws its values, shared by ``HeatmapFigure`` and ``HeatmapGridFigure``: the
/// causal mask, the modality bands, the normalisation and colour map with the colour bar's label,
/// and the pooling used when a cell would be smaller than a device pixel.
public struct HeatmapLook: Sendable {
    /// Mask the upper triangle (key position > query position).
    public var causal: Bool
    /// Modality spans in absolute positions.
    public var bands: [ModalityBand]
    public var normalization: Normalization
    public var colorMap: ColorMap
    public var colorBarLabel: String
    public var pooling: HeatmapData.Pooling

    /// `colorBarLabel` nil: "attention weight", plus ", log" on a logarithmic scale.
    public init(
        causal: Bool = true, bands: [ModalityBand] = [], normalization: Normalization = .log(1e-4 ... 1),
        colorMap: ColorMap = .viridis, colorBarLabel: String? = nil, pooling: HeatmapData.Pooling = .max
    ) {
        self.causal = causal
        self.bands = bands
        self.normalization = normalization
        self.colorMap = colorMap
        self.colorBarLabel = colorBarLabel ?? ("attention weight" + (normalization.isLog ? ", log" : ""))
        self.pooling = pooling
    }

    /// The causal mask, or none.
    public var mask: HeatmapMask { causal ? .causal : .none }

    /// `data` pooled `k × k` (only the causal entries under the causal mask); `data` for `k ≤ 1`.
    public func pooled(_ data: HeatmapData, by k: Int) -> HeatmapData { data.pooled(k, mode: pooling, causal: causal) }

    /// The subtitle line of a map pooled `k × k`, nil for `k ≤ 1`.
    public func poolNote(_ k: Int) -> String? { k > 1 ? pooling.note(k) : nil }

    /// The colour bar of the map.
    public var colorBar: ColorBar { ColorBar(normalization: normalization, colorMap: colorMap, label: colorBarLabel) }
}
