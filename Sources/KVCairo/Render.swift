import CCairo
import Foundation
import KVPlot

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The output file format.
public enum OutputFormat: Sendable, Hashable {
    /// PNG at `scale` device pixels per point (default 2).
    case png(scale: Double)
    case svg
    case pdf

    /// The format for a file extension (`png`, `svg`, `pdf`), PNG at `scale`.
    public init?(pathExtension ext: String, scale: Double = 2) {
        switch ext.lowercased() {
        case "png": self = .png(scale: scale)
        case "svg": self = .svg
        case "pdf": self = .pdf
        default: return nil
        }
    }
}

/// Renders `figure` to `url`. The file is written to a temporary name in the same folder and
/// renamed into place, so a failure leaves no half-written file.
///
/// Deterministic: the same figure gives the same bytes in PNG and SVG, and in PDF thanks to the
/// pinned creation date (on one machine and library version).
public func render(_ figure: Figure, to url: URL, format: OutputFormat) throws {
    let dir = url.deletingLastPathComponent()
    let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).\(UUID().uuidString).tmp")
    do {
        try renderDirect(figure, to: tmp, format: format)
        if rename(tmp.path, url.path) != 0 {
            let e = errno
            throw CairoError(operation: "rename \(tmp.lastPathComponent) to \(url.path)", status: 0, message: String(cString: strerror(e)))
        }
    } catch {
        unlink(tmp.path)
        throw error
    }
}

/// Renders into `url` directly (no temporary file).
func renderDirect(_ figure: Figure, to url: URL, format: OutputFormat) throws {
    switch format {
    case .png(let scale):
        let canvas = try CairoCanvas(imageSize: figure.size, scale: scale)
        figure.draw(in: canvas)
        try canvas.writePNG(to: url)
    case .svg:
        let canvas = try CairoCanvas(svgAt: url, size: figure.size)
        figure.draw(in: canvas)
        try canvas.finish()
        try SVGIDs.normalize(fileAt: url)
    case .pdf:
        let canvas = try CairoCanvas(pdfAt: url, size: figure.size)
        figure.draw(in: canvas)
        try canvas.finish()
    }
}

/// Reads a PNG back into packed `0x00RRGGBB` pixels (alpha dropped), through
/// `cairo_image_surface_create_from_png`. For tests and tools.
public func readPNG(_ url: URL) throws -> PixelImage {
    guard let s = cairo_image_surface_create_from_png(url.path) else {
        throw CairoError(operation: "read PNG", status: UInt32(CAIRO_STATUS_NO_MEMORY.rawValue), message: "NULL surface")
    }
    defer { cairo_surface_destroy(s) }
    try CairoError.check(cairo_surface_status(s), "read PNG \(url.path)")
    cairo_surface_flush(s)
    let w = Int(cairo_image_surface_get_width(s)), h = Int(cairo_image_surface_get_height(s))
    let stride = Int(cairo_image_surface_get_stride(s))
    let format = cairo_image_surface_get_format(s)
    guard format == CAIRO_FORMAT_RGB24 || format == CAIRO_FORMAT_ARGB32, let data = cairo_image_surface_get_data(s) else {
        throw CairoError(operation: "read PNG \(url.path)", status: UInt32(CAIRO_STATUS_INVALID_FORMAT.rawValue), message: "unsupported pixel format")
    }
    var pixels = [UInt32](repeating: 0, count: w * h)
    for y in 0 ..< h {
        let row = UnsafeRawPointer(data + y * stride).assumingMemoryBound(to: UInt32.self)
        for x in 0 ..< w { pixels[y * w + x] = row[x] & 0x00FF_FFFF }
    }
    return PixelImage(width: w, height: h, pixels: pixels)
}
