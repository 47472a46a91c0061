/// Plain-text tables for the terminal (`simulate`, `explore`, `render curves --match`, the
/// summary tables): every cell padded with spaces to its column's widest cell, columns two spaces
/// apart. Widths count characters, so `—` and `→` take one column.
public enum TextTable {
    /// The lines of `table` (its first row the header); `rightAligned(c)` right-aligns column `c`
    /// (numbers), the others are left-aligned. An empty table has no lines.
    public static func lines(_ table: [[String]], rightAligned: (Int) -> Bool = { _ in false }) -> [String] {
        guard let n = table.first?.count else { return [] }
        let widths = (0 ..< n).map { c in table.map { $0[c].count }.max()! }
        return table.map { row in
            zip(row, widths).enumerated().map { c, cell in
                let pad = String(repeating: " ", count: cell.1 - cell.0.count)
                return rightAligned(c) ? pad + cell.0 : cell.0 + pad
            }.joined(separator: "  ")
        }
    }
}
