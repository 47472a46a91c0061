import Foundation

/// The fixed colours of every figure: mask, retention states and background.
public enum Palette {
    /// Masked cells (causal upper triangle, unrecorded rows): `#F2F2F2`.
    public static let mask = RGB(hex: 0xF2F2F2)

    /// Retention state: kept `#3B528B`.
    public static let kept = RGB(hex: 0x3B528B)
    /// Retention state: merged (evicted, folded into a kept slot) `#F28E2B`.
    public static let merged = RGB(hex: 0xF28E2B)
    /// Retention state: evicted (dropped) `#E5E5E5`.
    public static let evicted = RGB(hex: 0xE5E5E5)
    /// Retention state: generated (≥ P, always present) `#59A14F`.
    public static let generatedState = RGB(hex: 0x59A14F)

    /// Figure background.
    public static let background = RGB.white
}

/// The kind of a span of positions, as drawn in modality strips and bars.
public enum BandKind: String, Sendable, Hashable, CaseIterable {
    case text, image, video, audio, generated

    /// The modality colour.
    public var color: RGB {
        switch self {
        case .text: return RGB(hex: 0x8DA0CB)
        case .image: return RGB(hex: 0xFC8D62)
        case .video: return RGB(hex: 0x66C2A5)
        case .audio: return RGB(hex: 0xE78AC3)
        case .generated: return RGB(hex: 0xB3B3B3)
        }
    }
}

/// A labelled span of token positions of one modality (a band along a heatmap axis, a strip).
public struct ModalityBand: Sendable, Hashable {
    /// Token positions (absolute, never pooled).
    public var range: Range<Int>
    public var kind: BandKind
    /// Optional label drawn centred in the span when there is room (e.g. "image 1").
    public var label: String?
    /// A pseudo-image (text tokens standing in for an image): drawn with a diagonal hatch.
    public var isPseudo: Bool
    public init(_ range: Range<Int>, kind: BandKind, label: String? = nil, isPseudo: Bool = false) {
        self.range = range; self.kind = kind; self.label = label; self.isPseudo = isPseudo
    }
}

/// How a merge variant is drawn: line dash and marker.
public enum MarkerShape: String, Sendable, Hashable, CaseIterable {
    case none, circle, square, triangle, diamond, cross
}

/// The fixed look of one policy in every figure: colour marks the base
/// selection; dash and marker mark the merge (none = solid + circle, pivotal = dashed + square,
/// average = dash-dot + triangle, weighted = dotted + diamond). `full` is a black dashed line
/// without markers, `oracle` a grey dotted line.
public struct PolicyStyle: Sendable, Hashable {
    public var color: RGB
    /// Dash pattern for a 1.5 pt line (empty = solid).
    public var dash: [Double]
    public var marker: MarkerShape

    public init(color: RGB, dash: [Double] = [], marker: MarkerShape = .circle) {
        self.color = color; self.dash = dash; self.marker = marker
    }

    /// Colours for labels without a declaration, chosen by a stable hash of the label (never
    /// by list order), so a label keeps its colour across figures.
    static let fallbackColors: [UInt32] = [0x4477AA, 0x228833, 0xCCBB44, 0xEE6677, 0xAA3377, 0x66CCEE]

    static let solid: [Double] = []
    static let dashed: [Double] = [4.5, 2.25]
    static let dashDot: [Double] = [4.5, 1.5, 1.2, 1.5]
    static let dotted: [Double] = [1.2, 1.8]

    /// The style of a declared policy: its colour (the base policy's), the dash and marker of its
    /// merge strategy (`nil`/`none` solid + circle, `pivotal` dashed + square, `average` dash-dot +
    /// triangle, `weighted` dotted + diamond); a reference line (the full cache, the oracle) is drawn
    /// without markers, dashed in black or dotted in its colour.
    public static func declared(color hex: UInt32, merge: String?, reference: Bool = false) -> PolicyStyle {
        let color = RGB(hex: hex)
        if reference, merge == nil { return PolicyStyle(color: color, dash: color == .black ? dashed : dotted, marker: .none) }
        switch merge {
        case nil, "none"?: return PolicyStyle(color: color, dash: solid, marker: .circle)
        case "pivotal"?: return PolicyStyle(color: color, dash: dashed, marker: .square)
        case "average"?: return PolicyStyle(color: color, dash: dashDot, marker: .triangle)
        case "weighted"?: return PolicyStyle(color: color, dash: dotted, marker: .diamond)
        default: return PolicyStyle(color: color, dash: dashed, marker: .cross)
        }
    }

    /// The oracle replayed at a policy's own kept counts (`render curves --match`): the policy's
    /// colour and marker on a sparse-dotted line, a dash no policy uses.
    public static func matchedOracle(of s: PolicyStyle) -> PolicyStyle {
        PolicyStyle(color: s.color, dash: sparseDotted, marker: s.marker)
    }
    static let sparseDotted: [Double] = [1, 3.5]

    /// A style for a bare label when no declaration is at hand (library users drawing their own
    /// series): a colour from a stable hash of the label, solid with circles.
    public static func of(_ label: String) -> PolicyStyle {
        declared(color: fallbackColors[Int(fnv1a(label) % UInt64(fallbackColors.count))], merge: nil)
    }

    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return h
    }
}
