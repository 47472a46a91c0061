import ArgumentParser
import Foundation
import KVTrace

/// Small helpers shared by the `render` subcommands: file names, number formats and the
/// parsing of layer lists and position ranges.
enum RenderSupport {
    /// A file-name-safe version of `s`.
    static func fileSafe(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" })
    }

    /// `12`, `12.5`.
    static func fmt(_ x: Double) -> String { x == x.rounded() ? String(Int(x)) : String(format: "%.1f", x) }

    /// Three significant decimals: `0.853`, `1`.
    static func fmt3(_ x: Double) -> String { x == x.rounded() ? String(Int(x)) : String(format: "%.3f", x) }

    /// Parses `a:b` (half-open) within `0 ... limit`.
    static func range(_ s: String, flag: String, limit: Int) throws -> Range<Int> {
        let ab = s.split(separator: ":", omittingEmptySubsequences: false)
        guard ab.count == 2 else { throw ValidationError("\(flag): '\(s)' is not a range a:b") }
        let a = ab[0].isEmpty ? 0 : Int(ab[0]), b = ab[1].isEmpty ? limit : Int(ab[1])
        guard let a, let b, a >= 0, a < b else { throw ValidationError("\(flag): '\(s)' is not a range a:b with 0 ≤ a < b") }
        guard b <= limit else { throw ValidationError("\(flag): \(s) goes past \(limit)") }
        return a ..< b
    }

    /// Parses `0,5-9`.
    static func layerList(_ s: String, flag: String = "--layers") throws -> [Int] {
        var out: [Int] = []
        for part in s.split(separator: ",") {
            let ab = part.split(separator: "-", omittingEmptySubsequences: false)
            if ab.count == 1, let v = Int(ab[0]), v >= 0 { out.append(v); continue }
            guard ab.count == 2, let a = Int(ab[0]), let b = Int(ab[1]), a >= 0, a <= b else {
                throw ValidationError("\(flag): '\(part)' is not a layer or a range a-b")
            }
            out += Array(a ... b)
        }
        guard !out.isEmpty else { throw ValidationError("\(flag): empty list") }
        return Array(Set(out)).sorted()
    }

    /// The chosen layers, checked against the trace.
    static func layers(_ s: String?, info: TraceInfo) throws -> [Int] {
        let chosen = try s.map { try layerList($0) } ?? info.recordedLayers
        if let missing = chosen.first(where: { !info.recordedLayers.contains($0) }) {
            throw CLIError("--layers: layer \(missing) is not in the trace (recorded: \(compactList(info.recordedLayers)))")
        }
        return chosen
    }

    /// "0-29" or "0,2,5".
    static func compactList(_ xs: [Int]) -> String {
        if let f = xs.first, let l = xs.last, xs == Array(f ... l), xs.count > 2 { return "\(f)-\(l)" }
        return xs.map(String.init).joined(separator: ",")
    }

    /// Checks that `layer` is recorded.
    static func checkLayer(_ layer: Int, info: TraceInfo) throws {
        guard info.recordedLayers.contains(layer) else {
            throw CLIError("--layer \(layer): not in the trace (recorded: \(compactList(info.recordedLayers)))")
        }
    }
}
