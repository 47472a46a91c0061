import Foundation

/// A point in figure coordinates: points (1/72 in), origin top-left, y grows downward.
public struct Point: Sendable, Hashable {
    public var x: Double
    public var y: Double
    public init(_ x: Double, _ y: Double) { self.x = x; self.y = y }
    public init(x: Double, y: Double) { self.x = x; self.y = y }
}

/// A width and height in points.
public struct Size: Sendable, Hashable {
    public var width: Double
    public var height: Double
    public init(width: Double, height: Double) { self.width = width; self.height = height }
    public init(_ width: Double, _ height: Double) { self.width = width; self.height = height }
}

/// Insets from each edge of a rectangle, in points.
public struct EdgeInsets: Sendable, Hashable {
    public var top, left, bottom, right: Double
    public init(top: Double = 0, left: Double = 0, bottom: Double = 0, right: Double = 0) {
        self.top = top; self.left = left; self.bottom = bottom; self.right = right
    }
    /// The same inset on every edge.
    public init(all value: Double) { self.init(top: value, left: value, bottom: value, right: value) }
}

/// An axis-aligned rectangle; `origin` is the top-left corner (y grows downward).
public struct Rect: Sendable, Hashable {
    public var origin: Point
    public var size: Size
    public init(origin: Point, size: Size) { self.origin = origin; self.size = size }
    public init(x: Double, y: Double, width: Double, height: Double) {
        self.origin = Point(x, y); self.size = Size(width, height)
    }
    public var minX: Double { origin.x }
    public var minY: Double { origin.y }
    public var maxX: Double { origin.x + size.width }
    public var maxY: Double { origin.y + size.height }
    public var midX: Double { origin.x + size.width / 2 }
    public var midY: Double { origin.y + size.height / 2 }
    public var width: Double { size.width }
    public var height: Double { size.height }
    public var center: Point { Point(midX, midY) }

    /// The rectangle shrunk by `insets` (never to a negative size).
    public func inset(by insets: EdgeInsets) -> Rect {
        Rect(
            x: minX + insets.left, y: minY + insets.top,
            width: max(0, width - insets.left - insets.right),
            height: max(0, height - insets.top - insets.bottom))
    }
    /// The rectangle shrunk by `d` on every side.
    public func inset(_ d: Double) -> Rect { inset(by: EdgeInsets(all: d)) }

    /// Whether `p` lies inside (edges included).
    public func contains(_ p: Point) -> Bool { p.x >= minX && p.x <= maxX && p.y >= minY && p.y <= maxY }
}

/// An sRGB colour with 8-bit channels.
public struct RGB: Sendable, Hashable, CustomStringConvertible {
    public var r: UInt8, g: UInt8, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }
    /// A colour from a packed `0xRRGGBB` value.
    public init(hex: UInt32) {
        r = UInt8((hex >> 16) & 0xFF); g = UInt8((hex >> 8) & 0xFF); b = UInt8(hex & 0xFF)
    }
    /// The packed `0xRRGGBB` value.
    public var hex: UInt32 { UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b) }
    /// `#rrggbb`, lower case.
    public var description: String { String(format: "#%02x%02x%02x", r, g, b) }

    public static let black = RGB(hex: 0x000000)
    public static let white = RGB(hex: 0xFFFFFF)
    /// Text and axis grey used across figures.
    public static let darkGray = RGB(hex: 0x333333)
    public static let gray = RGB(hex: 0x7F7F7F)
    public static let lightGray = RGB(hex: 0xD9D9D9)

    /// The same colour with an alpha.
    public func alpha(_ a: Double) -> RGBA { RGBA(self, alpha: a) }
}

/// An sRGB colour with alpha in 0...1.
public struct RGBA: Sendable, Hashable, CustomStringConvertible {
    public var rgb: RGB
    public var alpha: Double
    public init(_ rgb: RGB, alpha: Double = 1) { self.rgb = rgb; self.alpha = alpha }
    public var description: String {
        alpha >= 1 ? rgb.description : rgb.description + String(format: "@%.2f", alpha)
    }
}

/// Line cap style.
public enum LineCap: String, Sendable, Hashable { case butt, round, square }

/// Line join style.
public enum LineJoin: String, Sendable, Hashable { case miter, round, bevel }

/// How a path is stroked.
public struct StrokeStyle: Sendable, Hashable {
    public var color: RGBA
    /// Width in points (axes 0.75, data lines 1.5, separators 0.5).
    public var width: Double
    /// Dash pattern in points (on, off, …); empty = solid.
    public var dash: [Double]
    public var cap: LineCap
    public var join: LineJoin
    public init(
        color: RGBA, width: Double = 1, dash: [Double] = [], cap: LineCap = .butt,
        join: LineJoin = .miter
    ) {
        self.color = color; self.width = width; self.dash = dash; self.cap = cap; self.join = join
    }
    public init(_ color: RGB, width: Double = 1, dash: [Double] = [], cap: LineCap = .butt, join: LineJoin = .miter) {
        self.init(color: RGBA(color), width: width, dash: dash, cap: cap, join: join)
    }
    /// Axis lines and ticks: 0.75 pt dark grey.
    public static let axis = StrokeStyle(.darkGray, width: 0.75, cap: .square)
    /// Separators: 0.5 pt.
    public static let separator = StrokeStyle(.darkGray, width: 0.5)
}

/// Font weight.
public enum FontWeight: String, Sendable, Hashable { case regular, bold }

/// How text is drawn. The family is always DejaVu Sans.
public struct TextStyle: Sendable, Hashable {
    public var size: Double
    public var weight: FontWeight
    public var color: RGB
    public init(size: Double, weight: FontWeight = .regular, color: RGB = .black) {
        self.size = size; self.weight = weight; self.color = color
    }
    /// Figure title, 11 pt bold.
    public static let title = TextStyle(size: 11, weight: .bold)
    /// Subtitle, 8 pt dark grey.
    public static let subtitle = TextStyle(size: 8, color: .darkGray)
    /// Axis labels, 9 pt.
    public static let axisLabel = TextStyle(size: 9)
    /// Tick labels and legends, 8 pt.
    public static let tick = TextStyle(size: 8, color: .darkGray)
    /// Legend entries, 8 pt.
    public static let legend = TextStyle(size: 8)
    /// Small-multiple titles, 7 pt.
    public static let panelTitle = TextStyle(size: 7)
}

/// Which point of a text's box sits at the given position.
///
/// Vertical alignment uses fixed DejaVu Sans proportions (cap height 0.729 em, descender
/// 0.236 em), so it is the same on every backend: `.top…` puts the cap top at `y`, `.…`
/// (middle) centres capitals on `y`, `.baseline…` puts the baseline on `y`, `.bottom…` puts
/// the descender line on `y`.
public enum Anchor: String, Sendable, Hashable, CaseIterable {
    case topLeft, top, topRight
    case left, center, right
    case baselineLeft, baseline, baselineRight
    case bottomLeft, bottom, bottomRight

    /// Horizontal factor: 0 = left edge at x, 0.5 = centred, 1 = right edge at x.
    public var horizontal: Double {
        switch self {
        case .topLeft, .left, .baselineLeft, .bottomLeft: return 0
        case .top, .center, .baseline, .bottom: return 0.5
        case .topRight, .right, .baselineRight, .bottomRight: return 1
        }
    }

    /// Offset from the anchor to the baseline, in em (positive = baseline lies below the anchor).
    public var baselineOffsetEm: Double {
        switch self {
        case .topLeft, .top, .topRight: return 0.729
        case .left, .center, .right: return 0.3645
        case .baselineLeft, .baseline, .baselineRight: return 0
        case .bottomLeft, .bottom, .bottomRight: return -0.236
        }
    }

    /// The start of the baseline in the text's own (unrotated) frame, relative to the anchor,
    /// for a string of the given advance width and font size.
    public func baselineOrigin(width: Double, fontSize: Double) -> Point {
        Point(-horizontal * width, baselineOffsetEm * fontSize)
    }
}

/// A raster of packed `0x00RRGGBB` pixels, row-major from the top-left, drawn with
/// nearest-neighbour scaling (heatmaps, colour bars, patch grids).
public struct PixelImage: Sendable, Hashable {
    public var width: Int
    public var height: Int
    /// `width * height` packed `0x00RRGGBB` values, row 0 first.
    public var pixels: [UInt32]
    public init(width: Int, height: Int, pixels: [UInt32]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height, "PixelImage size mismatch")
        self.width = width; self.height = height; self.pixels = pixels
    }
    /// An image filled with one colour.
    public init(width: Int, height: Int, fill: RGB) {
        self.init(width: width, height: height, pixels: Array(repeating: fill.hex, count: width * height))
    }
    /// The colour at column `x`, row `y`.
    public subscript(x: Int, y: Int) -> RGB {
        get { RGB(hex: pixels[y * width + x]) }
        set { pixels[y * width + x] = newValue.hex }
    }
}
