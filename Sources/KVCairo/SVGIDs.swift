import Foundation

/// Cairo numbers SVG element ids (`surface12`, `clip3`, `image7`, …) from process-wide
/// counters, so the same figure rendered twice in one process differs in its ids. This rewrites
/// every such id (and its references) to a number in order of first appearance, behind an
/// optional `namespace` (so that several figures inlined in one HTML page keep distinct ids).
enum SVGIDs {
    static let prefixes = ["surface", "clip", "image", "pattern", "mask", "source", "glyph", "linear", "radial", "filter"]

    static func normalize(fileAt url: URL) throws {
        let data = try Data(contentsOf: url)
        guard let text = String(data: data, encoding: .utf8) else { return }
        let out = normalize(text)
        if out != text { try Data(out.utf8).write(to: url) }
    }

    static func normalize(_ text: String, namespace: String = "") -> String {
        // Tokens: <prefix><digits>(-<digits>)? appearing after id=" or #.
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var map: [String: String] = [:]
        var counters: [String: Int] = [:]
        var i = 0
        let idAttr = Array("id=\"".utf8), hash = UInt8(ascii: "#")
        while i < bytes.count {
            var start = -1
            if bytes[i] == hash {
                start = i + 1
            } else if i + idAttr.count <= bytes.count && Array(bytes[i ..< i + idAttr.count]) == idAttr {
                start = i + idAttr.count
            }
            if start >= 0, let (name, end) = matchID(bytes, at: start) {
                out.append(contentsOf: bytes[i ..< start])
                let prefix = String(name.prefix { !$0.isNumber })
                let replacement: String
                if let r = map[name] {
                    replacement = r
                } else {
                    let n = counters[prefix, default: 0] + 1
                    counters[prefix] = n
                    let suffix = name.dropFirst(prefix.count).split(separator: "-", omittingEmptySubsequences: false)
                    // glyph<font>-<glyph>: renumber the font part, keep the glyph index.
                    replacement =
                        suffix.count == 2
                        ? "\(prefix)\(renumberFont(prefix + String(suffix[0]), &map, &counters))-\(suffix[1])" : "\(prefix)\(n)"
                    map[name] = replacement
                }
                out.append(contentsOf: Array((namespace + replacement).utf8))
                i = end
            } else {
                out.append(bytes[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func renumberFont(_ key: String, _ map: inout [String: String], _ counters: inout [String: Int]) -> String {
        let k = "font:" + key
        if let v = map[k] { return v }
        let n = counters["font:", default: -1] + 1
        counters["font:"] = n
        map[k] = String(n)
        return String(n)
    }

    private static func matchID(_ b: [UInt8], at s: Int) -> (String, Int)? {
        for p in prefixes {
            let pb = Array(p.utf8)
            guard s + pb.count < b.count, Array(b[s ..< s + pb.count]) == pb else { continue }
            var j = s + pb.count
            let digitsStart = j
            while j < b.count, b[j] >= 48, b[j] <= 57 { j += 1 }
            guard j > digitsStart else { continue }
            if j < b.count, b[j] == UInt8(ascii: "-") {
                var k = j + 1
                let ds = k
                while k < b.count, b[k] >= 48, b[k] <= 57 { k += 1 }
                if k > ds { j = k }
            }
            // The token must end here (quote, paren or similar), not run into more letters.
            if j < b.count, (b[j] >= 65 && b[j] <= 90) || (b[j] >= 97 && b[j] <= 122) || b[j] == UInt8(ascii: "_") { continue }
            return (String(decoding: b[s ..< j], as: UTF8.self), j)
        }
        return nil
    }
}
