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

    /// Parses `0,5-9` into closed ranges (never expanded here, so `0-9223372036854775807` is cheap).
    static func layerRanges(_ s: String, flag: String = "--layers") throws -> [ClosedRange<Int>] {
        var out: [ClosedRange<Int>] = []
        for part in s.split(separator: ",") {
            let ab = part.split(separator: "-", omittingEmptySubsequences: false)
            if ab.count == 1, let v = Int(ab[0]), v >= 0 { out.append(v ... v); continue }
            guard ab.count == 2, let a = Int(ab[0]), let b = Int(ab[1]), a >= 0, a <= b else {
                throw ValidationError("\(flag): '\(String(part).escapedForMessage)' is not a layer or a range a-b")
            }
            out.append(a ... b)
        }
        guard !out.isEmpty else { throw ValidationError("\(flag): empty list") }
        return out
    }

    /// Parses `0,5-9` (syntax only; `layers(_:info:)` checks against a trace).
    static func layerList(_ s: String, flag: String = "--layers") throws -> [ClosedRange<Int>] {
        try layerRanges(s, flag: flag)
    }

    /// The chosen layers, checked against the trace: every listed layer must be recorded, so the
    /// result has at most as many entries as the trace records (a range is walked only until its
    /// first unrecorded layer).
    static func layers(_ s: String?, info: TraceInfo, flag: String = "--layers") throws -> [Int] {
        guard let s else { return info.recordedLayers }
        let recorded = Set(info.recordedLayers)
        var chosen = Set<Int>()
        for r in try layerRanges(s, flag: flag) {
            var l = r.lowerBound
            while true {
                guard recorded.contains(l) else {
                    throw CLIError("\(flag): layer \(l) is not in the trace (recorded: \(compactList(info.recordedLayers)))")
                }
                chosen.insert(l)
                if l == r.upperBound { break }
                l += 1
            }
        }
        return chosen.sorted()
    }

    /// Prints `table` (its first row the header) with columns padded to their widest cell.
    static func printTable(_ table: [[String]]) {
        guard let n = table.first?.count else { return }
        let widths = (0 ..< n).map { c in table.map { $0[c].count }.max()! }
        for r in table { print(zip(r, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")) }
    }

    /// "0-29" or "0,2,5".
    static func compactList(_ xs: [Int]) -> String {
        if let f = xs.first, let l = xs.last, xs == Array(f ... l), xs.count > 2 { return "\(f)-\(l)" }
        return xs.map(String.init).joined(separator: ",")
    }

    /// `--trace` paths (each opened with `mapping`, which bare arrays need) by content hash.
    static func tracesByHash(_ paths: [String], mapping: BareArrayMapping) throws -> [String: (path: String, source: any TraceSource)] {
        var out: [String: (String, any TraceSource)] = [:]
        for p in paths {
            let s: any TraceSource
            do { s = try TraceLoader.open(p, mapping: mapping) } catch { throw CLIError("--trace \(p): \(error)") }
            out[s.info.contentHash] = (p, s)
        }
        return out
    }

    /// Checks that `layer` is recorded.
    static func checkLayer(_ layer: Int, info: TraceInfo) throws {
        guard info.recordedLayers.contains(layer) else {
            throw CLIError("--layer \(layer): not in the trace (recorded: \(compactList(info.recordedLayers)))")
        }
    }
}
