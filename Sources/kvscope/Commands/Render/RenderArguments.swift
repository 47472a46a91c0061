import ArgumentParser
import Foundation
import KVTrace
import KVSimulator

/// Small helpers shared by the `render` subcommands: file names, number formats and layer checks.
enum RenderSupport {
    /// A file-name-safe version of `s`.
    static func fileSafe(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" })
    }

    /// `12`, `12.5`.
    static func fmt(_ x: Double) -> String { x == x.rounded() ? String(Int(x)) : String(format: "%.1f", x) }

    /// Three significant decimals: `0.853`, `1`.
    static func fmt3(_ x: Double) -> String { x == x.rounded() ? String(Int(x)) : String(format: "%.3f", x) }

    /// Prints `table` (its first row the header) with columns padded to their widest cell.
    static func printTable(_ table: [[String]]) {
        for line in TextTable.lines(table) { print(line) }
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
