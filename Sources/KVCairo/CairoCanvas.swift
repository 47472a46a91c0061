import CCairo
import Foundation
import KVPlot

/// A ``KVPlot/Canvas`` backed by a Cairo surface: an RGB24 image (for PNG, with a device
/// scale), an SVG file or a PDF file.
///
/// The canvas owns its `cairo_surface_t` and `cairo_t`. It is a non-`Sendable` class: create,
/// draw and finish it inside one function or task. Drawing methods cannot throw (they implement
/// `Canvas`); Cairo's error state is sticky, so call ``checkStatus(_:)`` after drawing.
public final class CairoCanvas: Canvas {
    /// The kind of surface.
    public enum SurfaceKind: Sendable, Equatable {
        case image(scale: Double)
        case svg
        case pdf
    }

    /// The PDF creation and modification date written into every PDF, so output is byte-stable.
    public static let pinnedPDFDate = "2024-01-01T00:00:00Z"
    /// The font family, selected by name.
    public static let fontFamily = "DejaVu Sans"

    public let size: Size
    public let kind: SurfaceKind
    private let surface: OpaquePointer
    private let cr: OpaquePointer
    private var finished = false

    /// An RGB24 image surface of `size` points at `scale` device pixels per point.
    public convenience init(imageSize size: Size, scale: Double = 2) throws {
        guard scale > 0, scale.isFinite, size.width > 0, size.height > 0 else {
            throw CairoError(
                operation: "create image surface", status: UInt32(CAIRO_STATUS_INVALID_SIZE.rawValue), message: "invalid size or scale")
        }
        let w = Int32((size.width * scale).rounded(.up)), h = Int32((size.height * scale).rounded(.up))
        guard let s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h) else {
            throw CairoError(operation: "create image surface", status: UInt32(CAIRO_STATUS_NO_MEMORY.rawValue), message: "NULL surface")
        }
        try self.init(surface: s, size: size, kind: .image(scale: scale), what: "image surface")
        // The pixel grid is rounded up, so the page may not cover the last row or column fully:
        // start from white everywhere rather than from black (which showed as a stray grey line).
        cairo_set_source_rgb(cr, 1, 1, 1)
        cairo_paint(cr)
        cairo_scale(cr, scale, scale)
    }

    /// An SVG surface writing into `sink` (every byte Cairo emits is appended; nothing touches disk).
    public convenience init(svgInto sink: ByteSink, size: Size) throws {
        let s = try sink.surface({ cairo_svg_surface_create_for_stream($0, $1, $2, $3) }, size: size, what: "SVG surface")
        try self.init(surface: s, size: size, kind: .svg, what: "SVG surface")
        cairo_svg_surface_restrict_to_version(surface, CAIRO_SVG_VERSION_1_1)
    }

    /// A one-page PDF surface writing into `sink`, with pinned creation and modification dates.
    public convenience init(pdfInto sink: ByteSink, size: Size) throws {
        let s = try sink.surface({ cairo_pdf_surface_create_for_stream($0, $1, $2, $3) }, size: size, what: "PDF surface")
        try self.init(surface: s, size: size, kind: .pdf, what: "PDF surface")
        cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATE_DATE, Self.pinnedPDFDate)
        cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_MOD_DATE, Self.pinnedPDFDate)
        cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATOR, "KVScope")
        try CairoError.check(cairo_surface_status(surface), "set PDF metadata")
    }

    /// The image surface as PNG bytes (through `cairo_surface_write_to_png_stream`).
    public func pngData() throws -> Data {
        guard case .image = kind else {
            throw CairoError(
                operation: "write PNG", status: UInt32(CAIRO_STATUS_SURFACE_TYPE_MISMATCH.rawValue), message: "not an image surface")
        }
        try checkStatus("draw")
        cairo_surface_flush(surface)
        let sink = ByteSink()
        try CairoError.check(
            cairo_surface_write_to_png_stream(surface, ByteSink.callback, Unmanaged.passUnretained(sink).toOpaque()), "encode PNG")
        return sink.data
    }

    private init(surface s: OpaquePointer, size: Size, kind: SurfaceKind, what: String) throws {
        let status = cairo_surface_status(s)
        guard status == CAIRO_STATUS_SUCCESS else {
            cairo_surface_destroy(s)
            throw CairoError(operation: "create \(what)", status: status)
        }
        guard let c = cairo_create(s) else {
            cairo_surface_destroy(s)
            throw CairoError(operation: "create context", status: UInt32(CAIRO_STATUS_NO_MEMORY.rawValue), message: "NULL context")
        }
        let cs = cairo_status(c)
        guard cs == CAIRO_STATUS_SUCCESS else {
            cairo_destroy(c); cairo_surface_destroy(s)
            throw CairoError(operation: "create context", status: cs)
        }
        self.surface = s; self.cr = c; self.size = size; self.kind = kind
        // Deterministic text: unhinted metrics (same layout on every backend), grey antialiasing.
        if let options = cairo_font_options_create() {
            cairo_font_options_set_hint_metrics(options, CAIRO_HINT_METRICS_OFF)
            cairo_font_options_set_hint_style(options, CAIRO_HINT_STYLE_NONE)
            cairo_font_options_set_antialias(options, CAIRO_ANTIALIAS_GRAY)
            cairo_set_font_options(c, options)
            cairo_font_options_destroy(options)
        }
    }

    deinit {
        cairo_destroy(cr)
        cairo_surface_destroy(surface)
    }

    // MARK: Status

    /// Throws the context's or surface's error, if any.
    public func checkStatus(_ operation: String = "draw") throws {
        try CairoError.check(cairo_status(cr), operation)
        try CairoError.check(cairo_surface_status(surface), operation)
    }

    /// Finishes the surface (writes SVG/PDF files) and checks the status.
    public func finish() throws {
        try checkStatus("draw")
        guard !finished else { return }
        finished = true
        cairo_surface_finish(surface)
        try CairoError.check(cairo_surface_status(surface), "finish surface")
    }

    /// Writes the image surface as PNG to `url`.
    public func writePNG(to url: URL) throws {
        guard case .image = kind else {
            throw CairoError(
                operation: "write PNG", status: UInt32(CAIRO_STATUS_SURFACE_TYPE_MISMATCH.rawValue), message: "not an image surface")
        }
        try checkStatus("draw")
        cairo_surface_flush(surface)
        try CairoError.check(cairo_surface_write_to_png(surface, url.path), "write PNG \(url.path)")
    }

    /// The device pixel size of an image canvas.
    public var pixelSize: (width: Int, height: Int)? {
        guard case .image = kind else { return nil }
        return (Int(cairo_image_surface_get_width(surface)), Int(cairo_image_surface_get_height(surface)))
    }

    // MARK: Canvas

    private func setColor(_ c: RGBA) {
        cairo_set_source_rgba(cr, Double(c.rgb.r) / 255, Double(c.rgb.g) / 255, Double(c.rgb.b) / 255, c.alpha)
    }

    private func setPath(_ path: Path) {
        cairo_new_path(cr)
        for e in path.elements {
            switch e {
            case .move(let p): cairo_move_to(cr, p.x, p.y)
            case .line(let p): cairo_line_to(cr, p.x, p.y)
            case .curve(let a, let b, let p): cairo_curve_to(cr, a.x, a.y, b.x, b.y, p.x, p.y)
            case .close: cairo_close_path(cr)
            }
        }
    }

    public func fill(_ path: Path, _ color: RGBA) {
        guard !path.isEmpty else { return }
        setPath(path)
        setColor(color)
        cairo_set_fill_rule(cr, CAIRO_FILL_RULE_WINDING)
        cairo_fill(cr)
    }

    public func stroke(_ path: Path, _ style: StrokeStyle) {
        guard !path.isEmpty, style.width > 0 else { return }
        setPath(path)
        setColor(style.color)
        cairo_set_line_width(cr, style.width)
        switch style.cap {
        case .butt: cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT)
        case .round: cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND)
        case .square: cairo_set_line_cap(cr, CAIRO_LINE_CAP_SQUARE)
        }
        switch style.join {
        case .miter: cairo_set_line_join(cr, CAIRO_LINE_JOIN_MITER)
        case .round: cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND)
        case .bevel: cairo_set_line_join(cr, CAIRO_LINE_JOIN_BEVEL)
        }
        style.dash.withUnsafeBufferPointer { d in
            cairo_set_dash(cr, d.baseAddress, Int32(d.count), 0)
        }
        cairo_stroke(cr)
        cairo_set_dash(cr, nil, 0, 0)
    }

    public func image(_ pixels: PixelImage, in rect: Rect) {
        guard pixels.width > 0, pixels.height > 0, rect.width > 0, rect.height > 0 else { return }
        // SVG viewers smooth embedded images: up-sample so each cell spans several pixels.
        var factor = 1
        if kind == .svg {
            let cellPoints = min(rect.width / Double(pixels.width), rect.height / Double(pixels.height))
            factor = max(1, min(4, Int((cellPoints * 4).rounded(.up))))
            while factor > 1 && pixels.width * pixels.height * factor * factor > 4_000_000 { factor -= 1 }
        }
        let w = pixels.width * factor, h = pixels.height * factor
        guard let img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, Int32(w), Int32(h)) else { return }
        defer { cairo_surface_destroy(img) }
        guard cairo_surface_status(img) == CAIRO_STATUS_SUCCESS, let data = cairo_image_surface_get_data(img) else {
            return  // the context stays valid; checkStatus cannot see this, so mark it below
        }
        cairo_surface_flush(img)
        let stride = Int(cairo_image_surface_get_stride(img))
        pixels.pixels.withUnsafeBufferPointer { src in
            let base = src.baseAddress!
            for y in 0 ..< h {
                let dst = UnsafeMutableRawPointer(data + y * stride).assumingMemoryBound(to: UInt32.self)
                let row = base + (y / factor) * pixels.width
                if factor == 1 {
                    dst.update(from: row, count: w)
                } else {
                    for x in 0 ..< pixels.width {
                        let v = row[x]
                        for f in 0 ..< factor { dst[x * factor + f] = v }
                    }
                }
            }
        }
        cairo_surface_mark_dirty(img)
        cairo_save(cr)
        cairo_rectangle(cr, rect.minX, rect.minY, rect.width, rect.height)
        cairo_clip(cr)
        cairo_translate(cr, rect.minX, rect.minY)
        cairo_scale(cr, rect.width / Double(w), rect.height / Double(h))
        cairo_set_source_surface(cr, img, 0, 0)
        if let pattern = cairo_get_source(cr) {
            cairo_pattern_set_filter(pattern, CAIRO_FILTER_NEAREST)
            cairo_pattern_set_extend(pattern, CAIRO_EXTEND_PAD)
        }
        cairo_paint(cr)
        cairo_restore(cr)
    }

    private func selectFont(_ style: TextStyle) {
        cairo_select_font_face(
            cr, Self.fontFamily, CAIRO_FONT_SLANT_NORMAL,
            style.weight == .bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL)
        cairo_set_font_size(cr, style.size)
    }

    public func text(_ string: String, at point: Point, style: TextStyle, anchor: Anchor, angle: Double) {
        guard !string.isEmpty else { return }
        selectFont(style)
        var ext = cairo_text_extents_t()
        cairo_text_extents(cr, string, &ext)
        let origin = anchor.baselineOrigin(width: ext.x_advance, fontSize: style.size)
        cairo_save(cr)
        cairo_translate(cr, point.x, point.y)
        if angle != 0 { cairo_rotate(cr, -angle * .pi / 180) }
        cairo_new_path(cr)
        cairo_move_to(cr, origin.x, origin.y)
        setColor(RGBA(style.color))
        cairo_show_text(cr, string)
        cairo_restore(cr)
    }

    public func measure(_ string: String, style: TextStyle) -> Size {
        selectFont(style)
        var ext = cairo_text_extents_t()
        cairo_text_extents(cr, string, &ext)
        return Size(ext.x_advance, style.size)
    }

    public func pushClip(_ rect: Rect) {
        cairo_save(cr)
        cairo_rectangle(cr, rect.minX, rect.minY, rect.width, rect.height)
        cairo_clip(cr)
    }

    public func popClip() { cairo_restore(cr) }
}

/// Collects the bytes a Cairo stream surface writes (`cairo_*_create_for_stream`); the caller keeps
/// it alive until the surface is finished.
public final class ByteSink {
    public var data = Data()
    public init() {}

    static let callback: cairo_write_func_t = { closure, bytes, length in
        guard let closure, let bytes else { return CAIRO_STATUS_WRITE_ERROR }
        Unmanaged<ByteSink>.fromOpaque(closure).takeUnretainedValue().data.append(bytes, count: Int(length))
        return CAIRO_STATUS_SUCCESS
    }

    /// A vector surface of `size` points whose bytes go into this sink: `create` is
    /// `cairo_svg_surface_create_for_stream` or `cairo_pdf_surface_create_for_stream`. A NULL
    /// surface is the `CairoError` "create `what`".
    func surface(
        _ create: (cairo_write_func_t, UnsafeMutableRawPointer?, Double, Double) -> OpaquePointer?, size: Size, what: String
    ) throws -> OpaquePointer {
        guard let s = create(Self.callback, Unmanaged.passUnretained(self).toOpaque(), size.width, size.height) else {
            throw CairoError(operation: "create \(what)", status: UInt32(CAIRO_STATUS_NO_MEMORY.rawValue), message: "NULL surface")
        }
        return s
    }
}
