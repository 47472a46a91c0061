import Foundation

/// A figure's text as plain paths, for pages that must open fast.
///
/// Cairo's SVG draws each character as a `<use>` of a `<symbol>` glyph outline. Browsers build a
/// shadow tree for every `<use>`, and a page of twenty figures has thousands of them: most of its
/// opening time. ``inline(_:)`` replaces each run of consecutive glyph references (one text label)
/// by a single `<path>` holding the glyph outlines at their places, as compact relative path data
/// (``Pen``: coordinates to 1/100 pt, a fraction of a pixel), and drops the glyph symbols no
/// reference needs any more. Anything it does not recognise is left as it was, symbols included.
enum GlyphPaths {
    static func inline(_ svg: String) -> String {
        let lines = svg.split(separator: "\n", omittingEmptySubsequences: false)
        // 1. Glyph outlines: <symbol … id="X"> <path … d="…"/> … </symbol>.
        var outline: [String: String] = [:]
        var symbolLines: [(id: String, range: Range<Int>)] = []
        var i = 0
        while i < lines.count {
            if lines[i].hasPrefix("<symbol "), let id = attribute("id", in: lines[i]) {
                var j = i + 1
                var d: [String] = []
                while j < lines.count, !lines[j].hasPrefix("</symbol>") {
                    if let p = attribute("d", in: lines[j]) { d.append(p) }
                    j += 1
                }
                guard j < lines.count else { break }
                outline[id] = d.joined(separator: " ")
                symbolLines.append((id, i ..< j + 1))
                i = j + 1
            } else {
                i += 1
            }
        }
        guard !outline.isEmpty else { return svg }
        // 2. Runs of <use href="#glyph" x= y=/> become one path.
        var symbolOf: [Int: String] = [:]
        for (id, r) in symbolLines { for k in r { symbolOf[k] = id } }
        var out: [String] = []
        var outSymbol: [Int: String] = [:]  // out index → the symbol it belongs to
        var inRun = false
        var pen = Pen()
        var indent = ""
        func flush() {
            if inRun && !pen.data.isEmpty { out.append(indent + "<path d=\"" + pen.data + "\"/>") }
            inRun = false
            pen = Pen()
        }
        for (k, line) in lines.enumerated() {
            let t = line.drop { $0 == " " }
            if symbolOf[k] == nil, t.hasPrefix("<use "), t.hasSuffix("/>"),
                let ref = attribute("xlink:href", in: t) ?? attribute("href", in: t), ref.hasPrefix("#"),
                let d = outline[String(ref.dropFirst())],
                let x = attribute("x", in: t).flatMap(Double.init), let y = attribute("y", in: t).flatMap(Double.init)
            {
                var trial = pen
                if trial.draw(d, at: x, y) {
                    if !inRun { indent = String(line.prefix { $0 == " " }) }
                    inRun = true
                    pen = trial
                    continue
                }
            }
            flush()
            if let id = symbolOf[k] { outSymbol[out.count] = id }
            out.append(String(line))
        }
        flush()
        // 3. Drop the symbols nothing refers to now.
        var referenced = Set<Substring>()
        for (k, line) in out.enumerated() where outSymbol[k] == nil && line.contains("#") {
            for part in line.split(separator: "#", omittingEmptySubsequences: false).dropFirst() {
                referenced.insert(part.prefix { $0 != "\"" && $0 != ")" })
            }
        }
        let keep = Set(symbolLines.map(\.id).filter { referenced.contains(Substring($0)) })
        return out.enumerated().filter { outSymbol[$0.offset].map(keep.contains) ?? true }.map(\.element).joined(separator: "\n")
    }

    /// The value of `name="…"` in one tag.
    static func attribute(_ name: String, in tag: Substring) -> String? {
        guard let r = tag.range(of: " \(name)=\"") else { return nil }
        let rest = tag[r.upperBound...]
        guard let end = rest.firstIndex(of: "\"") else { return nil }
        return String(rest[..<end])
    }

    /// Writes glyph outlines as compact relative path data (`m`, `l`, `c`, `z`, coordinates to
    /// 1/100 pt). Deltas are taken from the position already written, so rounding never
    /// accumulates along a label: every point is within 0.005 pt of its exact place.
    struct Pen {
        private(set) var data = ""
        private var px = 0.0, py = 0.0  // the position written so far
        private var sx = 0.0, sy = 0.0  // the start of the current subpath

        /// Appends outline `d` (Cairo's absolute `M`, `L`, `C`, `Z`) moved by (x, y); false, with
        /// nothing appended, when `d` holds anything else.
        mutating func draw(_ d: String, at x: Double, _ y: Double) -> Bool {
            var copy = self
            var numbers: [Double] = []
            var command: Character?
            func emit() -> Bool {
                guard let c = command else { return numbers.isEmpty }
                let arity: Int
                switch c {
                case "M", "L": arity = 2
                case "C": arity = 6
                case "Z": arity = 0
                default: return false
                }
                if arity == 0 {
                    guard numbers.isEmpty else { return false }
                    copy.data += "z"
                    copy.px = copy.sx; copy.py = copy.sy
                    return true
                }
                guard !numbers.isEmpty, numbers.count % arity == 0 else { return false }
                var i = 0
                while i < numbers.count {
                    let letter = c == "M" && i == 0 ? "m" : c == "C" ? "c" : "l"
                    copy.data += letter
                    var endX = copy.px, endY = copy.py
                    for p in stride(from: 0, to: arity, by: 2) {
                        let dx = Self.round(numbers[i + p] + x - copy.px), dy = Self.round(numbers[i + p + 1] + y - copy.py)
                        copy.data += Self.text(dx, first: p == 0) + Self.text(dy, first: false)
                        if p == arity - 2 { endX = copy.px + dx; endY = copy.py + dy }
                    }
                    copy.px = endX; copy.py = endY
                    if c == "M" && i == 0 { copy.sx = endX; copy.sy = endY }
                    i += arity
                }
                return true
            }
            for token in d.split(separator: " ") {
                if let v = Double(token) {
                    numbers.append(v)
                } else {
                    guard emit(), token.count == 1 else { return false }
                    command = token.first
                    numbers = []
                }
            }
            guard emit() else { return false }
            self = copy
            return true
        }

        static func round(_ v: Double) -> Double { (v * 100).rounded() / 100 }

        /// `0.5` → `.5`, `-0.25` → `-.25`, `2` → `2`; a space in front unless it is first after a
        /// command letter or negative (the minus sign separates).
        static func text(_ v: Double, first: Bool) -> String {
            var s = String(format: "%.2f", v)
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
            if s == "-0" { s = "0" }
            if s.hasPrefix("0.") { s.removeFirst() } else if s.hasPrefix("-0.") { s = "-" + s.dropFirst(2) }
            return first || s.hasPrefix("-") ? s : " " + s
        }
    }
}
