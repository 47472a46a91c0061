import Foundation

/// A drawing surface. Coordinates are points with the origin at the top-left and y growing
/// downward, as in Cairo, SVG and PDF.
///
/// A canvas is deliberately not `Sendable`: it belongs to the one task that draws a figure.
/// Charts and figures are `Sendable` values that draw themselves into a canvas.
public protocol Canvas: AnyObject {
    /// The drawable size in points.
    var size: Size { get }
    /// Fills `path` (non-zero winding).
    func fill(_ path: Path, _ color: RGBA)
    /// Strokes `path`.
    func stroke(_ path: Path, _ style: StrokeStyle)
    /// Draws `pixels` scaled into `rect` with nearest-neighbour sampling (no smoothing), one
    /// image for the whole raster.
    func image(_ pixels: PixelImage, in rect: Rect)
    /// Draws `string` with its `anchor` at `point`, rotated by `angle` degrees counter-clockwise
    /// as seen on the page (90 = reads bottom to top).
    func text(_ string: String, at point: Point, style: TextStyle, anchor: Anchor, angle: Double)
    /// The advance width and the height (font size) of `string`.
    func measure(_ string: String, style: TextStyle) -> Size
    /// Restricts drawing to `rect` until the matching `popClip()`.
    func pushClip(_ rect: Rect)
    /// Ends the innermost `pushClip(_:)`.
    func popClip()
}

extension Canvas {
    /// Fills `path` with an opaque colour.
    public func fill(_ path: Path, _ color: RGB) { fill(path, RGBA(color)) }
    /// Fills a rectangle.
    public func fill(_ rect: Rect, _ color: RGB) { fill(Path.rect(rect), RGBA(color)) }
    /// Strokes one segment.
    public func line(from a: Point, to b: Point, _ style: StrokeStyle) { stroke(.line(from: a, to: b), style) }
    /// Draws unrotated text.
    public func text(_ string: String, at point: Point, style: TextStyle, anchor: Anchor = .baselineLeft) {
        text(string, at: point, style: style, anchor: anchor, angle: 0)
    }
}

/// Something that can draw itself into a frame of a canvas. Charts are `Sendable` values.
public protocol Chart: Sendable {
    /// Draws into `frame` (points) of `canvas`.
    func draw(in canvas: some Canvas, frame: Rect)
}
