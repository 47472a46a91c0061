import Foundation

/// Layout checks on what a figure draws, for tests and for `Figure.fitted`.
///
/// A figure is drawn into a ``RecordingCanvas``; every text command becomes a box (advance
/// width from the canvas's measure, height from the cap height 0.729 em above the baseline to
/// the descender 0.236 em below it, rotated with the text), every filled or stroked path and
/// every image becomes its bounding box. The audit then lists:
///
/// * text whose box leaves the canvas (clipped text), with `margin` points of slack;
/// * shapes or images that leave the canvas by more than `margin`;
/// * text that sits on top of other text (two boxes overlapping by more than 1 pt each way).
///
/// The result is a list of plain sentences, empty when the layout is clean.
public struct LayoutAudit: Sendable {
    /// A text box on the page.
    public struct TextBox: Sendable, Hashable {
        public var string: String
        public var rect: Rect
    }

    public var textBoxes: [TextBox]
    /// Bounding boxes of filled paths, stroked paths (widened by half the line width) and images.
    public var shapeBoxes: [Rect]
    public var size: Size

    /// Audits `figure` drawn into a fresh recording canvas of its size.
    public init(_ figure: Figure) {
        let canvas = RecordingCanvas(size: figure.size)
        figure.draw(in: canvas)
        self.init(canvas)
    }

    /// Audits what `canvas` recorded.
    public init(_ canvas: RecordingCanvas) {
        size = canvas.size
        var texts: [TextBox] = []
        var shapes: [Rect] = []
        for op in canvas.operations {
            switch op {
            case let .text(s, p, style, anchor, angle):
                guard !s.isEmpty else { continue }
                let w = canvas.measure(s, style: style).width
                let o = anchor.baselineOrigin(width: w, fontSize: style.size)
                // Unrotated box relative to the anchor point.
                let local = [
                    Point(o.x, o.y - 0.729 * style.size), Point(o.x + w, o.y - 0.729 * style.size),
                    Point(o.x, o.y + 0.236 * style.size), Point(o.x + w, o.y + 0.236 * style.size),
                ]
                let a = -angle * .pi / 180
                let pts = local.map { Point(p.x + $0.x * cos(a) - $0.y * sin(a), p.y + $0.x * sin(a) + $0.y * cos(a)) }
                texts.append(TextBox(string: s, rect: Self.bounds(pts)))
            case let .fill(path, _):
                if let b = Self.bounds(path) { shapes.append(b) }
            case let .stroke(path, style):
                if let b = Self.bounds(path) { shapes.append(b.inset(-style.width / 2)) }
            case let .image(_, rect):
                shapes.append(rect)
            case .pushClip, .popClip:
                break
            }
        }
        textBoxes = texts
        shapeBoxes = shapes
    }

    static func bounds(_ pts: [Point]) -> Rect {
        let xs = pts.map(\.x), ys = pts.map(\.y)
        return Rect(x: xs.min()!, y: ys.min()!, width: xs.max()! - xs.min()!, height: ys.max()! - ys.min()!)
    }

    static func bounds(_ path: Path) -> Rect? {
        var pts: [Point] = []
        for e in path.elements {
            switch e {
            case let .move(a), let .line(a): pts.append(a)
            case let .curve(b, c, d):
                // The curve's midpoint, not its control points (which overshoot an arc).
                let a = pts.last ?? b
                pts += [Point((a.x + 3 * b.x + 3 * c.x + d.x) / 8, (a.y + 3 * b.y + 3 * c.y + d.y) / 8), d]
            case .close: break
            }
        }
        return pts.isEmpty ? nil : bounds(pts)
    }

    /// Text boxes that leave the canvas by more than `margin` points.
    public func clippedText(margin: Double = 0.5) -> [TextBox] {
        textBoxes.filter {
            $0.rect.minX < -margin || $0.rect.minY < -margin || $0.rect.maxX > size.width + margin || $0.rect.maxY > size.height + margin
        }
    }

    /// Pairs of text boxes that overlap by more than `slack` points in both directions.
    public func overlappingText(slack: Double = 1) -> [(TextBox, TextBox)] {
        var out: [(TextBox, TextBox)] = []
        for i in textBoxes.indices {
            for j in textBoxes.indices where j > i {
                let a = textBoxes[i].rect, b = textBoxes[j].rect
                let dx = min(a.maxX, b.maxX) - max(a.minX, b.minX), dy = min(a.maxY, b.maxY) - max(a.minY, b.minY)
                if dx > slack && dy > slack { out.append((textBoxes[i], textBoxes[j])) }
            }
        }
        return out
    }

    /// Everything wrong, one sentence per problem (empty = clean).
    public func problems(margin: Double = 0.5) -> [String] {
        var out = clippedText(margin: margin).map {
            "text \"\($0.string)\" at \(Self.describe($0.rect)) leaves the \(Self.describe(size)) canvas"
        }
        let page = Rect(x: -margin - 1, y: -margin - 1, width: size.width + 2 * margin + 2, height: size.height + 2 * margin + 2)
        for s in shapeBoxes where s.minX < page.minX || s.minY < page.minY || s.maxX > page.maxX || s.maxY > page.maxY {
            out.append("a shape at \(Self.describe(s)) leaves the \(Self.describe(size)) canvas")
        }
        out += overlappingText().map { "text \"\($0.0.string)\" overlaps \"\($0.1.string)\"" }
        return out
    }

    /// The union of every shape and image drawn after the page background, i.e. the content.
    public var contentBounds: Rect? {
        let drawn = shapeBoxes.filter { !($0.minX <= 0 && $0.minY <= 0 && $0.maxX >= size.width && $0.maxY >= size.height) }
        let all = drawn + textBoxes.map(\.rect)
        guard let f = all.first else { return nil }
        return all.dropFirst().reduce(f) { u, r in
            Rect(
                x: min(u.minX, r.minX), y: min(u.minY, r.minY), width: max(u.maxX, r.maxX) - min(u.minX, r.minX),
                height: max(u.maxY, r.maxY) - min(u.minY, r.minY))
        }
    }

    static func describe(_ r: Rect) -> String {
        String(format: "(%.1f, %.1f, %.1f×%.1f)", r.minX, r.minY, r.width, r.height)
    }
    static func describe(_ s: Size) -> String { String(format: "%.0f×%.0f", s.width, s.height) }
}
