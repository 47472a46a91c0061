import Foundation

/// A colour-mapped matrix drawn as one nearest-neighbour image, with optional causal mask,
/// modality bands along both axes (6 pt strips), separator lines at image boundaries and axes
/// whose ticks mark span boundaries.
///
/// `frame` is the whole chart; the plot area is `frame` minus ``insets``. With ``squareCells``
/// the plot area shrinks so that cells are square.
public struct HeatmapChart: Chart {
    public var data: HeatmapData
    public var normalization: Normalization
    public var colorMap: ColorMap
    public var mask: HeatmapMask
    public var maskColor: RGB
    /// Bands in absolute positions (drawn at true positions even when pooled).
    public var bands: [ModalityBand]
    /// Draw thin lines across the map at the boundaries of image-like bands.
    public var separators: Bool
    public var xLabel: String?
    public var yLabel: String?
    /// Space for axes, labels and bands around the plot area.
    public var insets: EdgeInsets
    public var squareCells: Bool
    /// Show tick labels on the bottom (x) and left (y) axes (off for inner small multiples).
    public var showXTickLabels: Bool
    public var showYTickLabels: Bool
    /// Band strip thickness in points.
    public var bandWidth: Double
    /// Panel title drawn above the map (small multiples), 7 pt.
    public var panelTitle: String?
    /// Which axes carry band strips.
    public var bandAxes: BandAxes
    /// Absolute key positions marked by a black vertical line across the map (e.g. `P`).
    public var columnLines: [Int]
    /// Absolute key positions marked by a small orange tick in a 6 pt lane above the map
    /// (merged positions); the top band moves up to make room.
    public var columnTicks: [Int]
    /// Tick overrides (nil = span boundaries when there are bands, nice steps otherwise).
    public var xTicks: TickSpec?
    public var yTicks: TickSpec?

    /// Where band strips are drawn.
    public enum BandAxes: String, Sendable, Hashable { case both, top, none }

    public init(
        data: HeatmapData, normalization: Normalization = .log(1e-4 ... 1), colorMap: ColorMap = .viridis,
        mask: HeatmapMask = .causal, maskColor: RGB = Palette.mask, bands: [ModalityBand] = [],
        separators: Bool = true, xLabel: String? = "key position", yLabel: String? = "query position",
        insets: EdgeInsets = EdgeInsets(top: 20, left: 52, bottom: 34, right: 4), squareCells: Bool = true,
        showXTickLabels: Bool = true, showYTickLabels: Bool = true, bandWidth: Double = 6, panelTitle: String? = nil,
        bandAxes: BandAxes = .both, columnLines: [Int] = [], columnTicks: [Int] = [], xTicks: TickSpec? = nil,
        yTicks: TickSpec? = nil
    ) {
        self.data = data; self.normalization = normalization; self.colorMap = colorMap; self.mask = mask
        self.maskColor = maskColor; self.bands = bands; self.separators = separators; self.xLabel = xLabel
        self.yLabel = yLabel; self.insets = insets; self.squareCells = squareCells
        self.showXTickLabels = showXTickLabels; self.showYTickLabels = showYTickLabels
        self.bandWidth = bandWidth; self.panelTitle = panelTitle
        self.bandAxes = bandAxes; self.columnLines = columnLines; self.columnTicks = columnTicks
        self.xTicks = xTicks; self.yTicks = yTicks
    }

    /// The map rectangle for a chart `frame`.
    public func plotRect(in frame: Rect) -> Rect {
        var plot = frame.inset(by: insets)
        guard squareCells, data.rows > 0, data.cols > 0 else { return plot }
        let cell = min(plot.width / Double(data.cols), plot.height / Double(data.rows))
        plot.size = Size(cell * Double(data.cols), cell * Double(data.rows))
        return plot
    }

    /// The x coordinate of absolute key position `p` on `plot`.
    public func x(_ p: Double, plot: Rect) -> Double {
        plot.minX + (p - Double(data.colStart)) / Double(data.cols * data.cellSpan) * plot.width
    }
    /// The y coordinate of absolute query position `p` on `plot`.
    public func y(_ p: Double, plot: Rect) -> Double {
        plot.minY + (p - Double(data.rowStart)) / Double(data.rows * data.cellSpan) * plot.height
    }

    /// The pixel image of the map (one pixel per cell).
    public var raster: PixelImage {
        HeatmapRaster.render(data, normalization: normalization, colorMap: colorMap, mask: mask, maskColor: maskColor)
    }

    public func draw(in canvas: some Canvas, frame: Rect) {
        let plot = plotRect(in: frame)
        guard plot.width > 0, plot.height > 0 else { return }
        canvas.image(raster, in: plot)
        let cols = data.colPositions, rows = data.rowPositions
        let gap = 1.0
        let hasBands = !bands.isEmpty && bandAxes != .none
        let hasRowBands = hasBands && bandAxes == .both
        let bandW = hasBands ? bandWidth : 0
        // Merged-position ticks get their own white lane between the map and the top band, so
        // they never sit on an orange image band (where they read as hatching).
        let tickLane = columnTicks.isEmpty ? 0.0 : 6
        if hasBands {
            let top = Rect(x: plot.minX, y: plot.minY - gap - tickLane - bandW, width: plot.width, height: bandW)
            BandStrip(bands: bands, domain: cols, orientation: .horizontal).draw(in: canvas, frame: top)
            if hasRowBands {
                let left = Rect(x: plot.minX - gap - bandW, y: plot.minY, width: bandW, height: plot.height)
                BandStrip(bands: bands, domain: rows, orientation: .vertical).draw(in: canvas, frame: left)
            }
            // Span labels above the top strip, when they fit.
            let ls = TextStyle(size: 7, color: .darkGray)
            for b in bands {
                guard let label = b.label, let r = BandStrip(bands: [], domain: cols).rect(of: b, in: top) else { continue }
                if canvas.measure(label, style: ls).width + 2 <= r.width {
                    canvas.text(label, at: Point(r.midX, top.minY - 1.5), style: ls, anchor: .bottom)
                }
            }
        }
        if separators {
            let sep = StrokeStyle(color: RGBA(.white, alpha: 0.75), width: 0.5)
            var path = Path()
            for p in Set(bands.filter { $0.kind != .text && $0.kind != .generated }.flatMap { [$0.range.lowerBound, $0.range.upperBound] })
                .sorted()
            {
                if p > cols.lowerBound && p < cols.upperBound {
                    let xx = x(Double(p), plot: plot)
                    path.move(to: Point(xx, plot.minY)); path.line(to: Point(xx, plot.maxY))
                }
                if hasRowBands && p > rows.lowerBound && p < rows.upperBound {
                    let yy = y(Double(p), plot: plot)
                    path.move(to: Point(plot.minX, yy)); path.line(to: Point(plot.maxX, yy))
                }
            }
            if !path.isEmpty { canvas.stroke(path, sep) }
        }
        canvas.stroke(.rect(plot.inset(-0.25)), StrokeStyle(.darkGray, width: 0.5))  // outside the map
        if !columnLines.isEmpty {
            var path = Path()
            for p in columnLines where p >= cols.lowerBound && p <= cols.upperBound {
                let xx = x(Double(p), plot: plot)
                path.move(to: Point(xx, plot.minY)); path.line(to: Point(xx, plot.maxY))
            }
            canvas.stroke(path, StrokeStyle(.black, width: 0.75))
        }
        if !columnTicks.isEmpty {
            var path = Path()
            for p in columnTicks where cols.contains(p) {
                let xx = x(Double(p) + 0.5, plot: plot)
                path.move(to: Point(xx, plot.minY - tickLane + 1.5)); path.line(to: Point(xx, plot.minY - 1))
            }
            canvas.stroke(path, StrokeStyle(Palette.merged, width: 0.75))
        }
        let xTicks: TickSpec = self.xTicks ?? (hasBands ? .explicit(BandStrip.boundaryTicks(bands, domain: cols)) : .auto(target: 5))
        let yTicks: TickSpec = self.yTicks ?? (hasRowBands ? .explicit(BandStrip.boundaryTicks(bands, domain: rows)) : .auto(target: 5))
        let xAxis = Axis(
            scale: .linear(Double(cols.lowerBound) ... Double(cols.upperBound)), label: xLabel, ticks: xTicks,
            showLine: false, showTickLabels: showXTickLabels)
        xAxis.draw(in: canvas, plot: plot, side: .bottom)
        let yAxis = Axis(
            scale: .linear(Double(rows.lowerBound) ... Double(rows.upperBound)), label: yLabel, ticks: yTicks,
            showLine: false, showTickLabels: showYTickLabels, reversed: true)
        let leftPad = hasRowBands ? gap + bandW : 0
        let yPlot = Rect(x: plot.minX - leftPad, y: plot.minY, width: plot.width + leftPad, height: plot.height)
        yAxis.draw(in: canvas, plot: yPlot, side: .left)
        if let panelTitle {
            canvas.text(
                panelTitle, at: Point(plot.midX, plot.minY - (hasBands ? gap + bandW : 0) - tickLane - 2), style: .panelTitle,
                anchor: .bottom)
        }
    }
}

/// A raster picture drawn nearest-neighbour into a frame, keeping its aspect ratio, with an
/// optional 7 pt title (e.g. a pseudo-image's grey levels).
public struct ImageChart: Chart, Hashable {
    public var image: PixelImage
    public var title: String?
    public init(image: PixelImage, title: String? = nil) { self.image = image; self.title = title }

    /// The picture rectangle inside `frame` (title space reserved on top).
    public func imageRect(in frame: Rect) -> Rect {
        let top = title == nil ? 0.0 : 10.0
        let area = Rect(x: frame.minX, y: frame.minY + top, width: frame.width, height: max(0, frame.height - top))
        guard image.width > 0, image.height > 0 else { return area }
        let cell = min(area.width / Double(image.width), area.height / Double(image.height))
        return Rect(x: area.minX, y: area.minY, width: cell * Double(image.width), height: cell * Double(image.height))
    }

    public func draw(in canvas: some Canvas, frame: Rect) {
        let r = imageRect(in: frame)
        canvas.image(image, in: r)
        canvas.stroke(.rect(r.inset(-0.25)), StrokeStyle(.darkGray, width: 0.5))
        if let title { canvas.text(title, at: Point(r.midX, r.minY - 2), style: .panelTitle, anchor: .bottom) }
    }

    /// A grey-level picture from values in 0…1 (0 = black), row-major.
    public static func grey(_ levels: [Double], rows: Int, cols: Int) -> PixelImage {
        precondition(levels.count == rows * cols, "grey: levels.count != rows × cols")
        return PixelImage(
            width: cols, height: rows,
            pixels: levels.map {
                let v = UInt32((min(max($0.isNaN ? 0 : $0, 0), 1) * 255).rounded())
                return v << 16 | v << 8 | v
            })
    }
}
