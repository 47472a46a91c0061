import CCairo
import Foundation
import KVPlot
import KVTrace

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

/// Renders `figure` to `url`: Cairo encodes into memory (PNG, SVG or PDF stream surfaces, the
/// surface status checked after `finish`), then the bytes replace `url` with one checked atomic
/// write (`AtomicFile`: temporary file, every write and `fsync` checked, one `rename(2)`), so a
/// full disk or a read-only folder is an error and never a truncated or half-written figure.
///
/// Deterministic: the same figure gives the same bytes in PNG and SVG, and in PDF thanks to the
/// pinned creation date (on one machine and library version).
public func render(_ figure: Figure, to url: URL, format: OutputFormat) throws {
    try AtomicFile.write(try renderData(figure, format: format), to: url)
}

/// The encoded bytes of `figure` in `format`.
public func renderData(_ figure: Figure, format: OutputFormat) throws -> Data {
    switch format {
    case .png(let scale):
        let canvas = try CairoCanvas(imageSize: figure.size, scale: scale)
        figure.draw(in: canvas)
        return try canvas.pngData()
    case .svg:
        let sink = ByteSink()
        let canvas = try CairoCanvas(svgInto: sink, size: figure.size)
        figure.draw(in: canvas)
        try canvas.finish()
        let text = String(decoding: sink.data, as: UTF8.self)
        return Data(SVGIDs.normalize(text).utf8)
    case .pdf:
        let sink = ByteSink()
        let canvas = try CairoCanvas(pdfInto: sink, size: figure.size)
        figure.draw(in: canvas)
        try canvas.finish()
        return sink.data
    }
}

/// Renders `figure` as SVG markup for inlining in an HTML page (see ``inlineSVG(_:idPrefix:)``).
/// Deterministic like ``render(_:to:format:)``; encoded in memory.
public func svgMarkup(_ figure: Figure, idPrefix: String) throws -> String {
    inlineSVG(String(decoding: try renderData(figure, format: .svg), as: UTF8.self), idPrefix: idPrefix)
}

/// An SVG document as Cairo writes it, made ready for an HTML page: the `<svg>` element alone (the
/// XML declaration dropped) with Cairo's ids (`clip3`, `glyph0-1`, `image7`, …) renumbered in order
/// of appearance behind `idPrefix`, so that several figures on one page never share an id.
/// `idPrefix` should start with a letter; characters other than ASCII letters, digits, `-` and `_`
/// become `_`, and a prefix that does not start with a letter gets an `f` in front.
public func inlineSVG(_ document: String, idPrefix: String) -> String {
    var prefix = String(idPrefix.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") ? $0 : "_" })
    if prefix.first.map({ !$0.isLetter }) ?? false { prefix = "f" + prefix }
    var svg = SVGIDs.normalize(document, namespace: prefix)
    if let start = svg.range(of: "<svg") { svg = String(svg[start.lowerBound...]) }
    return svg.trimmingCharacters(in: .whitespacesAndNewlines)
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
        throw CairoError(
            operation: "read PNG \(url.path)", status: UInt32(CAIRO_STATUS_INVALID_FORMAT.rawValue), message: "unsupported pixel format")
    }
    var pixels = [UInt32](repeating: 0, count: w * h)
    for y in 0 ..< h {
        let row = UnsafeRawPointer(data + y * stride).assumingMemoryBound(to: UInt32.self)
        for x in 0 ..< w { pixels[y * w + x] = row[x] & 0x00FF_FFFF }
    }
    return PixelImage(width: w, height: h, pixels: pixels)
}
