import Foundation

/// Builds the modality figure: left, per layer, the mean attention a text
/// token versus an image token receives (two lines, log y); right, a stacked bar per policy of
/// the kept cache's share by modality (0–1), with an optional "prompt" reference bar.
public struct ModalityFigure: Sendable {
    public var layers: [Int]
    public var textMean: [Double]
    public var imageMean: [Double]
    public var policies: [String]
    /// `shares[policy][kind]`: fractions of the kept cache per modality in `kinds` order.
    public var shares: [[Double]]
    public var kinds: [BandKind]
    /// Composition of the prompt `[0, P)` for reference (same order as `kinds`).
    public var promptShare: [Double]?
    public var title: String
    public var subtitle: [String]
    public var logY: Bool
    public var size: Size

    /// - Parameters:
    ///   - layers: layer indices (x of the left panel).
    ///   - textMean, imageMean: mean attention per text / image token, one per layer.
    ///   - policies: bar categories (policy ids).
    ///   - shares: per policy, one fraction per entry of `kinds`.
    ///   - kinds: modalities of the stacked segments (default text, image).
    ///   - promptShare: the prompt's own composition, drawn as a first bar "prompt".
    ///   - logY: log scale for the left panel (default true).
    public init(
        layers: [Int], textMean: [Double], imageMean: [Double], policies: [String], shares: [[Double]],
        kinds: [BandKind] = [.text, .image], promptShare: [Double]? = nil, title: String, subtitle: [String] = [],
        logY: Bool = true, size: Size = Size(620, 290)
    ) {
        precondition(textMean.count == layers.count && imageMean.count == layers.count, "ModalityFigure: per-layer lengths")
        precondition(shares.count == policies.count, "ModalityFigure: shares per policy")
        self.layers = layers; self.textMean = textMean; self.imageMean = imageMean; self.policies = policies
        self.shares = shares; self.kinds = kinds; self.promptShare = promptShare; self.title = title
        self.subtitle = subtitle; self.logY = logY; self.size = size
    }

    public func build() -> Figure {
        let size = Size(max(self.size.width, Figure.titleBlockWidth(title: title, subtitle: subtitle)), self.size.height)
        var fig = Figure(size: size, title: title, subtitle: subtitle)
        let top = fig.headerHeight + 12
        let h = size.height - top - 4
        let leftW = (size.width - 8) * 0.52
        let xs = layers.map(Double.init)
        // Layers are whole numbers: half a layer of room each side, a tick per layer (or every
        // n-th layer when there are many), never fractional ticks.
        let lo = xs.min() ?? 0, hi = xs.max() ?? 0
        let xDomain = (lo - 0.5) ... (hi + 0.5)
        let step = max(1, Int((Double(layers.count) / 8).rounded(.up)))
        let layerTicks = layers.enumerated().filter { $0.offset % step == 0 }.map { Tick(Double($0.element), String($0.element)) }
        let values = textMean + imageMean
        let yScale: Scale = logY ? .log(CurvesFigure.logDomain(values)) : .linear(CurvesFigure.niceDomain(values))
        let series = [
            LineSeries(label: "text token", points: zip(xs, textMean).map { Point($0, $1) }, color: BandKind.text.color, marker: .circle),
            LineSeries(
                label: "image token", points: zip(xs, imageMean).map { Point($0, $1) }, color: BandKind.image.color, marker: .square),
        ]
        let left = LineChart(
            series: series, xAxis: Axis(scale: .linear(xDomain), label: "layer", ticks: .explicit(layerTicks)),
            yAxis: Axis(scale: yScale, label: "mean attention per token" + (logY ? ", log" : "")), legend: .right,
            insets: EdgeInsets(top: 8, left: 50, bottom: 36, right: 8), panelTitle: "attention received per token")
        fig.add(left, in: Rect(x: 4, y: top, width: leftW, height: h))
        var cats = policies
        var rows = shares
        if let promptShare { cats.insert("prompt", at: 0); rows.insert(promptShare, at: 0) }
        let bars = kinds.enumerated().map { k, kind in
            BarSeries(label: kind.rawValue, color: kind.color, values: rows.map { k < $0.count ? $0[k] : 0 })
        }
        let long = cats.contains { $0.count > 8 }
        let right = BarChart(
            categories: cats, series: bars, mode: .stacked, yAxis: Axis(scale: .linear(0 ... 1), label: "share of kept cache"),
            insets: EdgeInsets(top: 8, left: 44, bottom: long ? 44 : 24, right: 6), panelTitle: "kept cache by modality",
            labelAngle: long ? 30 : 0)
        fig.add(right, in: Rect(x: 4 + leftW + 6, y: top, width: size.width - leftW - 14, height: h))
        return fig
    }
}
