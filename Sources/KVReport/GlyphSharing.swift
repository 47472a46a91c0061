/// Glyph outlines shared by every figure of a page.
///
/// Cairo's SVG draws text as `<use>` references to `<symbol>` glyph outlines that each figure
/// defines for itself, so a page of twenty figures carries the same letters twenty times (most of
/// a budget-curve figure's bytes). ``share(_:)`` takes the symbols out of one figure's markup,
/// keeps one copy of each distinct outline (by its content) under a page-wide id (`g1`, `g2`, …, in
/// order of first appearance) and points the figure's references there; ``definitions`` is the
/// hidden `<svg>` that holds them, placed once at the top of the page. References from one inline
/// `<svg>` to a symbol of another in the same HTML document resolve as usual.
struct GlyphSharing {
    private var idOfBody: [String: String] = [:]
    private var symbols: [String] = []

    /// `svg` with its `<symbol>` elements moved into the shared set and references renamed.
    mutating func share(_ svg: String) -> String {
        let open = "<symbol ", close = "</symbol>"
        var out = ""
        out.reserveCapacity(svg.utf8.count)
        var renamed: [(String, String)] = []
        var rest = svg[...]
        while let start = rest.range(of: open) {
            guard let end = rest[start.upperBound...].range(of: close),
                  let tagEnd = rest[start.upperBound ..< end.lowerBound].firstIndex(of: ">") else { break }
            let tag = rest[start.lowerBound ... tagEnd]
            guard let idStart = tag.range(of: " id=\"") , let idEnd = tag[idStart.upperBound...].firstIndex(of: "\"") else { break }
            let id = String(tag[idStart.upperBound ..< idEnd])
            let body = String(rest[rest.index(after: tagEnd) ..< end.lowerBound])
            let shared: String
            if let s = idOfBody[body] {
                shared = s
            } else {
                shared = "g\(symbols.count + 1)"
                idOfBody[body] = shared
                symbols.append("<symbol overflow=\"visible\" id=\"\(shared)\">\(body)</symbol>")
            }
            renamed.append((id, shared))
            out += rest[..<start.lowerBound]
            rest = rest[end.upperBound...]
        }
        out += rest
        guard !renamed.isEmpty else { return svg }
        // References are `#id"` (href attributes); the closing quote keeps `glyph0-1` from matching `glyph0-10`.
        var map: [String: String] = [:]
        for (a, b) in renamed { map[a] = b }
        var result = ""
        result.reserveCapacity(out.utf8.count)
        var tail = out[...]
        while let hash = tail.range(of: "#") {
            result += tail[..<hash.upperBound]
            tail = tail[hash.upperBound...]
            if let q = tail.firstIndex(of: "\""), let to = map[String(tail[..<q])] {
                result += to
                tail = tail[q...]
            }
        }
        result += tail
        return result
    }

    /// The hidden `<svg>` holding every shared glyph, or "" when there is none.
    var definitions: String {
        guard !symbols.isEmpty else { return "" }
        return "<svg class=\"glyphs\" xmlns=\"http://www.w3.org/2000/svg\" width=\"0\" height=\"0\" style=\"position:absolute\" aria-hidden=\"true\"><defs>\n"
            + symbols.joined(separator: "\n") + "\n</defs></svg>\n"
    }
}
