import Foundation

/// A vector path in figure coordinates (points, y down).
public struct Path: Sendable, Hashable {
    /// One path command.
    public enum Element: Sendable, Hashable {
        case move(Point)
        case line(Point)
        /// Cubic Bézier curve with two control points.
        case curve(Point, Point, Point)
        case close
    }
    public private(set) var elements: [Element] = []

    public init() {}
    public init(elements: [Element]) { self.elements = elements }

    public mutating func move(to p: Point) { elements.append(.move(p)) }
    public mutating func line(to p: Point) { elements.append(.line(p)) }
    public mutating func curve(to p: Point, control1: Point, control2: Point) {
        elements.append(.curve(control1, control2, p))
    }
    public mutating func close() { elements.append(.close) }
    public mutating func append(_ other: Path) { elements.append(contentsOf: other.elements) }

    public var isEmpty: Bool { elements.isEmpty }

    /// A closed rectangle.
    public static func rect(_ r: Rect) -> Path {
        Path(elements: [
            .move(r.origin), .line(Point(r.maxX, r.minY)), .line(Point(r.maxX, r.maxY)),
            .line(Point(r.minX, r.maxY)), .close,
        ])
    }

    /// A straight segment.
    public static func line(from a: Point, to b: Point) -> Path { Path(elements: [.move(a), .line(b)]) }

    /// An open polyline through `points` (empty for no points).
    public static func polyline(_ points: [Point]) -> Path {
        guard let first = points.first else { return Path() }
        return Path(elements: [.move(first)] + points.dropFirst().map { .line($0) })
    }

    /// A closed polygon.
    public static func polygon(_ points: [Point]) -> Path {
        var p = polyline(points)
        if !p.isEmpty { p.close() }
        return p
    }

    /// A circle approximated by four cubic Béziers (deterministic on every backend).
    public static func circle(center c: Point, radius r: Double) -> Path {
        let k = 0.5522847498 * r
        var p = Path()
        p.move(to: Point(c.x + r, c.y))
        p.curve(to: Point(c.x, c.y + r), control1: Point(c.x + r, c.y + k), control2: Point(c.x + k, c.y + r))
        p.curve(to: Point(c.x - r, c.y), control1: Point(c.x - k, c.y + r), control2: Point(c.x - r, c.y + k))
        p.curve(to: Point(c.x, c.y - r), control1: Point(c.x - r, c.y - k), control2: Point(c.x - k, c.y - r))
        p.curve(to: Point(c.x + r, c.y), control1: Point(c.x + k, c.y - r), control2: Point(c.x + r, c.y - k))
        p.close()
        return p
    }

    /// A semicircle-like arc above (or below, `up == false`) the baseline from `a.x` to `b.x`
    /// at height `a.y`, as one cubic Bézier. Its height is `height` points.
    public static func arc(from x0: Double, to x1: Double, baseline y: Double, height h: Double, up: Bool = true) -> Path {
        let dy = (up ? -1.0 : 1.0) * h / 0.75  // a cubic with both controls at dy peaks at 0.75 dy
        var p = Path()
        p.move(to: Point(x0, y))
        p.curve(to: Point(x1, y), control1: Point(x0, y + dy), control2: Point(x1, y + dy))
        return p
    }
}
