import Foundation

/// A canvas that records every drawing command as a value, for structural tests.
///
/// Text is measured with a fixed metric (`0.6 em` per character, height = font size), so layout
/// is deterministic and independent of installed fonts. ``dump`` gives one line per command with
/// coordinates rounded to 0.01 pt.
public final class RecordingCanvas: Canvas {
    /// One recorded drawing command.
    public enum Operation: Sendable, Hashable {
        case fill(Path, RGBA)
        case stroke(Path, StrokeStyle)
        case image(PixelImage, Rect)
        case text(String, Point, TextStyle, Anchor, angle: Double)
        case pushClip(Rect)
        case popClip
    }

    /// A recorded text command.
    public struct TextItem: Sendable, Hashable {
        public var string: String
        public var point: Point
        public var style: TextStyle
        public var anchor: Anchor
        public var angle: Double
    }

    public let size: Size
    /// Every command in drawing order.
    public private(set) var operations: [Operation] = []

    public init(size: Size) { self.size = size }

    public func fill(_ path: Path, _ color: RGBA) { operations.append(.fill(path, color)) }
    public func stroke(_ path: Path, _ style: StrokeStyle) { operations.append(.stroke(path, style)) }
    public func image(_ pixels: PixelImage, in rect: Rect) { operations.append(.image(pixels, rect)) }
    public func text(_ string: String, at point: Point, style: TextStyle, anchor: Anchor, angle: Double) {
        operations.append(.text(string, point, style, anchor, angle: angle))
    }
    public func measure(_ string: String, style: TextStyle) -> Size {
        Size(width: 0.6 * style.size * Double(string.unicodeScalars.count), height: style.size)
    }
    public func pushClip(_ rect: Rect) { operations.append(.pushClip(rect)) }
    public func popClip() { operations.append(.popClip) }

    /// All text commands, in order.
    public var texts: [TextItem] {
        operations.compactMap {
            if case let .text(s, p, st, a, angle) = $0 { return TextItem(string: s, point: p, style: st, anchor: a, angle: angle) }
            return nil
        }
    }

    /// The first text command whose string equals `string`.
    public func text(_ string: String) -> TextItem? { texts.first { $0.string == string } }

    /// All images with their destination rectangles.
    public var images: [(image: PixelImage, rect: Rect)] {
        operations.compactMap { if case let .image(i, r) = $0 { return (i, r) } else { return nil } }
    }

    /// Rectangles filled with `color` (paths that are exactly one axis-aligned rectangle).
    public func filledRects(_ color: RGB) -> [Rect] {
        operations.compactMap {
            guard case let .fill(path, c) = $0, c.rgb == color, let r = path.asRect else { return nil }
            return r
        }
    }

    /// Paths stroked with `color`.
    public func strokes(_ color: RGB) -> [Path] {
        operations.compactMap { if case let .stroke(p, s) = $0, s.color.rgb == color { return p } else { return nil } }
    }

    /// One line per command, coordinates rounded to 0.01 pt. Stable across runs and machines.
    public var dump: String {
        operations.map(Self.describe).joined(separator: "\n")
    }

    static func f(_ v: Double) -> String {
        let s = String(format: "%.2f", v)
        return s == "-0.00" ? "0.00" : s
    }
    static func p(_ pt: Point) -> String { "\(f(pt.x)),\(f(pt.y))" }
    static func r(_ rc: Rect) -> String { "\(f(rc.minX)),\(f(rc.minY)) \(f(rc.width))x\(f(rc.height))" }

    static func describe(_ path: Path) -> String {
        path.elements.map {
            switch $0 {
            case .move(let a): return "M\(p(a))"
            case .line(let a): return "L\(p(a))"
            case .curve(let a, let b, let c): return "C\(p(a)) \(p(b)) \(p(c))"
            case .close: return "Z"
            }
        }.joined(separator: " ")
    }

    static func describe(_ op: Operation) -> String {
        switch op {
        case let .fill(path, c): return "fill \(c) \(describe(path))"
        case let .stroke(path, s):
            let dash = s.dash.isEmpty ? "" : " dash[\(s.dash.map(f).joined(separator: ","))]"
            return "stroke \(s.color) w\(f(s.width))\(dash) \(describe(path))"
        case let .image(img, rc): return "image \(img.width)x\(img.height) in \(r(rc))"
        case let .text(s, pt, st, a, angle):
            let rot = angle == 0 ? "" : " rot\(f(angle))"
            return "text \"\(s)\" at \(p(pt)) \(a.rawValue) \(f(st.size))pt\(st.weight == .bold ? " bold" : "") \(st.color)\(rot)"
        case let .pushClip(rc): return "clip \(r(rc))"
        case .popClip: return "unclip"
        }
    }
}

extension Path {
    /// The rectangle this path describes, when it is exactly `Path.rect(_:)`.
    public var asRect: Rect? {
        guard elements.count == 5, case let .move(a) = elements[0], case let .line(b) = elements[1],
            case let .line(c) = elements[2], case let .line(d) = elements[3], case .close = elements[4],
            a.y == b.y, b.x == c.x, c.y == d.y, d.x == a.x
        else { return nil }
        return Rect(x: min(a.x, c.x), y: min(a.y, c.y), width: abs(c.x - a.x), height: abs(c.y - a.y))
    }
}
