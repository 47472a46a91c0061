import Foundation
import SwiftCSV

/// An explorer's `safe.csv`: the settings found safe, one row each, read by column name so that
/// any set of columns works (trace, policy, setting columns such as `hh_ratio`/`recent_ratio`,
/// metrics, `kept_ratio`, `cheapest`).
///
/// A row is one of the cheapest safe settings when its `cheapest` column holds a true value
/// (`true`, `yes`, `1`, `y`, `x`, `*`, `✓`, case-insensitive); without such a column, every row is
/// listed and none is singled out.
public struct ExploreTable: Sendable, Hashable {
    public var header: [String]
    public var rows: [[String]]

    public init(header: [String], rows: [[String]]) {
        self.header = header
        self.rows = rows.map { r in
            r.count >= header.count ? Array(r.prefix(header.count)) : r + Array(repeating: "", count: header.count - r.count)
        }
    }

    /// Parses CSV text (RFC 4180 quoting, through SwiftCSV); errors name `file`.
    public static func parse(_ text: String, file: String) throws -> ExploreTable {
        let csv: EnumeratedCSV
        do { csv = try EnumeratedCSV(string: text, delimiter: .comma, loadColumns: false) } catch {
            throw ReportError("\(file): not a readable CSV (\(error))")
        }
        let header = csv.header.map { $0.trimmingCharacters(in: .whitespaces) }
        guard !header.isEmpty, header.contains(where: { !$0.isEmpty }) else {
            throw ReportError("\(file): empty file (expected a header row)")
        }
        let rows = csv.rows.filter { !($0.count == 1 && $0[0].isEmpty) && !$0.isEmpty }
        return ExploreTable(header: header, rows: rows)
    }

    /// The index of the `cheapest` column, if any.
    public var cheapestColumn: Int? { header.firstIndex { $0.lowercased() == "cheapest" } }

    /// Whether row `r` is marked cheapest.
    public func isCheapest(_ r: [String]) -> Bool {
        guard let c = cheapestColumn, c < r.count else { return false }
        return ["true", "yes", "1", "y", "x", "*", "✓"].contains(r[c].trimmingCharacters(in: .whitespaces).lowercased())
    }

    /// The rows marked cheapest, in file order.
    public var cheapest: [[String]] { rows.filter(isCheapest) }
}

/// A report failure with a one-line message naming the file or flag.
public struct ReportError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ message: String) { description = message }
}
