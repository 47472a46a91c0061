import Foundation

/// A strip of modality bands along one axis (modality colours; pseudo-images hatched).
public struct BandStrip: Chart, Hashable {
    public enum Orientation: String, Sendable, Hashable {
        /// Positions run left to right.
        case horizontal
        /// Positions run top to bottom.
        case vertical
    }
    public var bands: [ModalityBand]
    /// The positions the strip covers (its full length).
    public var domain: Range<Int>
    public var orientation: Orientation
    /// Draw band labels centred in their span when they fit (horizontal strips only).
    public var showLabels: Bool

    public init(bands: [ModalityBand], domain: Range<Int>, orientation: Orientation = .horizontal, showLabels: Bool = false) {
        self.bands = bands; self.domain = domain; self.orientation = orientation; self.showLabels = showLabels
    }

    /// The rectangle of a band inside `frame` (clamped to the domain), or nil when outside it.
    public func rect(of band: ModalityBand, in frame: Rect) -> Rect? {
        let lo = max(band.range.lowerBound, domain.lowerBound), hi = min(band.range.upperBound, domain.upperBound)
        guard hi > lo, domain.count > 0 else { return nil }
        let n = Double(domain.count)
        let a = Double(lo - domain.lowerBound) / n, b = Double(hi - domain.lowerBound) / n
        switch orientation {
        case .horizontal: return Rect(x: frame.minX + a * frame.width, y: frame.minY, width: (b - a) * frame.width, height: frame.height)
        case .vertical: return Rect(x: frame.minX, y: frame.minY + a * frame.height, width: frame.width, height: (b - a) * frame.height)
        }
    }

    public func draw(in canvas: some Canvas, frame: Rect) {
        for band in bands {
            guard let r = rect(of: band, in: frame) else { continue }
            canvas.fill(r, band.kind.color)
            if band.isPseudo { Hatch.draw(in: canvas, rect: r) }
            if showLabels, orientation == .horizontal, let label = band.label, frame.height >= 7 {
                let style = TextStyle(size: min(7, frame.height - 1), color: .black)
                if canvas.measure(label, style: style).width + 4 <= r.width {
                    canvas.text(label, at: r.center, style: style, anchor: .center)
                }
            }
        }
    }

    /// Explicit ticks at the band boundaries inside the domain, labelled with their positions.
    public static func boundaryTicks(_ bands: [ModalityBand], domain: Range<Int>) -> [Tick] {
        var set = Set<Int>([domain.lowerBound, domain.upperBound])
        for b in bands {
            if domain.contains(b.range.lowerBound) { set.insert(b.range.lowerBound) }
            if b.range.upperBound > domain.lowerBound && b.range.upperBound <= domain.upperBound { set.insert(b.range.upperBound) }
        }
        return set.sorted().map { Tick(Double($0), String($0)) }
    }
}
