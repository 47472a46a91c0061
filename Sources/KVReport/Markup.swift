/// HTML text built in order, with every piece of text escaped on the way in.
///
/// Text and attribute values pass through ``Markup/escape(_:)``, which replaces the five
/// characters that can end a text run or an attribute value (`& < > " '`) by their character
/// references; nothing else is changed and no entity already in the text is kept as one (so
/// `a&amp;b` shows as typed). Only ``raw(_:)`` inserts markup as is, for inline SVG made by KVCairo
/// and the report's own fixed strings.
public struct Markup: Sendable {
    public private(set) var html = ""

    public init() {}

    /// `s` with `&`, `<`, `>`, `"` and `'` replaced by `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&#39;`.
    public static func escape(_ s: String) -> String {
        guard s.contains(where: { "&<>\"'".contains($0) }) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count + 16)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    /// Appends markup as is.
    public mutating func raw(_ s: String) { html += s }

    /// Appends escaped text.
    public mutating func text(_ s: String) { html += Self.escape(s) }

    /// `<name a="v" …>` with escaped values; a nil value drops the attribute, an empty one writes it bare.
    public mutating func open(_ name: String, _ attributes: [(String, String?)] = []) {
        html += "<" + name
        for (k, v) in attributes {
            guard let v else { continue }
            html += v.isEmpty ? " \(k)" : " \(k)=\"\(Self.escape(v))\""
        }
        html += ">"
    }

    public mutating func close(_ name: String) { html += "</\(name)>" }

    /// `<name …>` + the body + `</name>`.
    public mutating func element(_ name: String, _ attributes: [(String, String?)] = [], _ body: (inout Markup) -> Void) {
        open(name, attributes)
        body(&self)
        close(name)
    }

    /// `<name …>text</name>` with the text escaped.
    public mutating func element(_ name: String, _ attributes: [(String, String?)] = [], text: String) {
        open(name, attributes)
        self.text(text)
        close(name)
    }

    /// A newline, to keep the source readable.
    public mutating func line() { html += "\n" }
}
