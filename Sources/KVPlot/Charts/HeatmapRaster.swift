import Dispatch
import Foundation

/// Which cells of a heatmap are masked (drawn in ``Palette/mask``). NaN values are always masked.
public enum HeatmapMask: Sendable, Hashable {
    case none
    /// Causal attention: a cell is masked when its block lies entirely above the diagonal, i.e.
    /// its first key position exceeds its last query position.
    case causal
    /// An explicit row-major mask, `true` = masked (same size as the values).
    case cells([Bool])
}

/// Row-major matrix data for a heatmap plus its placement on absolute token positions.
public struct HeatmapData: Sendable, Hashable {
    /// `rows * cols` values, row-major (row 0 = top).
    public var values: [Float]
    public var rows: Int
    public var cols: Int
    /// Absolute position of row 0 (a window trace's first recorded query).
    public var rowStart: Int
    /// Absolute position of column 0.
    public var colStart: Int
    /// Positions per cell along each axis (the pooling factor; 1 = unpooled).
    public var cellSpan: Int

    public init(values: [Float], rows: Int, cols: Int, rowStart: Int = 0, colStart: Int = 0, cellSpan: Int = 1) {
        precondition(values.count == rows * cols, "HeatmapData: values.count \(values.count) != \(rows)×\(cols)")
        self.values = values; self.rows = rows; self.cols = cols
        self.rowStart = rowStart; self.colStart = colStart; self.cellSpan = max(1, cellSpan)
    }

    /// Converts a `Double` buffer.
    public init(values: [Double], rows: Int, cols: Int, rowStart: Int = 0, colStart: Int = 0, cellSpan: Int = 1) {
        self.init(values: values.map(Float.init), rows: rows, cols: cols, rowStart: rowStart, colStart: colStart, cellSpan: cellSpan)
    }

    /// Absolute positions covered along rows and columns.
    public var rowPositions: Range<Int> { rowStart ..< rowStart + rows * cellSpan }
    public var colPositions: Range<Int> { colStart ..< colStart + cols * cellSpan }

    /// For causal masking: the first masked column of row `r` (cols when none is masked).
    @inlinable
    public func firstCausalMaskedColumn(row r: Int) -> Int {
        // masked ⇔ colStart + c*k > rowStart + r*k + k - 1
        let k = cellSpan
        let num = rowStart - colStart + r * k + k - 1
        if num < 0 { return 0 }
        return min(cols, num / k + 1)
    }

    /// How heatmap blocks are pooled when down-sampling.
    public enum Pooling: String, Sendable, Hashable, CaseIterable {
        /// Keeps sinks and peaks visible (default).
        case max
        /// Averages only the causal (and non-NaN) entries of each block.
        case mean

        /// The subtitle line of a map pooled `k × k`: "max-pooled 4×4" or "mean-pooled 4×4 (causal entries)".
        public func note(_ k: Int) -> String { self == .max ? "max-pooled \(k)×\(k)" : "mean-pooled \(k)×\(k) (causal entries)" }
    }

    /// The subtitle line of a map whose cells are drawn `stretch` times taller than wide.
    public static func stretchNote(_ stretch: Double) -> String {
        "rows drawn \(String(format: "%.1f", stretch))× taller than wide (few recorded rows)"
    }

    /// The pool factor `k = ⌈max(rows, cols) / limit⌉`.
    public static func poolFactor(rows: Int, cols: Int, limit: Int) -> Int {
        guard limit > 0 else { return 1 }
        let n = Swift.max(rows, cols)
        return Swift.max(1, (n + limit - 1) / limit)
    }

    /// The data pooled over `k × k` blocks. With `causal`, entries above the diagonal are
    /// ignored and a block with none left stays masked (NaN). Ragged edge blocks pool what they
    /// have. Rows are processed in parallel.
    public func pooled(_ k: Int, mode: Pooling, causal: Bool) -> HeatmapData {
        guard k > 1 else { return self }
        let pr = (rows + k - 1) / k, pc = (cols + k - 1) / k
        let cols = self.cols, rows = self.rows, rowStart = self.rowStart, colStart = self.colStart
        var out = [Float](repeating: .nan, count: pr * pc)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                // Each iteration writes only its own output row; the buffers outlive the call.
                // Addresses cross into the @Sendable closure as integers (pointers are not Sendable).
                let sAddr = Int(bitPattern: src.baseAddress!), dAddr = Int(bitPattern: dst.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: pr) { bi in
                    let s = UnsafePointer<Float>(bitPattern: sAddr)!, d = UnsafeMutablePointer<Float>(bitPattern: dAddr)!
                    var acc = [Double](repeating: 0, count: pc)
                    var cnt = [Int](repeating: 0, count: pc)
                    var mx = [Float](repeating: -.infinity, count: pc)
                    for r in bi * k ..< Swift.min(rows, bi * k + k) {
                        let limit = causal ? Swift.min(cols, Swift.max(0, rowStart + r - colStart + 1)) : cols
                        let row = s + r * cols
                        for c in 0 ..< limit {
                            let v = row[c]
                            if v.isNaN { continue }
                            let bj = c / k
                            acc[bj] += Double(v); cnt[bj] += 1
                            if v > mx[bj] { mx[bj] = v }
                        }
                    }
                    for bj in 0 ..< pc where cnt[bj] > 0 {
                        d[bi * pc + bj] = mode == .max ? mx[bj] : Float(acc[bj] / Double(cnt[bj]))
                    }
                }
            }
        }
        return HeatmapData(values: out, rows: pr, cols: pc, rowStart: rowStart, colStart: colStart, cellSpan: cellSpan * k)
    }
}

/// Value → normalisation → colour-map conversion into one ``PixelImage``.
public enum HeatmapRaster {
    /// Converts `data` to pixels: one pixel per cell, masked and NaN cells in `maskColor`.
    /// A tight loop over the contiguous buffer, parallel over rows.
    public static func render(
        _ data: HeatmapData, normalization: Normalization, colorMap: ColorMap,
        mask: HeatmapMask = .none, maskColor: RGB = Palette.mask
    ) -> PixelImage {
        let rows = data.rows, cols = data.cols
        guard rows > 0, cols > 0 else { return PixelImage(width: cols, height: rows, pixels: []) }
        if case .cells(let m) = mask { precondition(m.count == rows * cols, "mask size mismatch") }
        let table = colorMap.table
        let maskHex = maskColor.hex
        var pixels = [UInt32](repeating: 0, count: rows * cols)
        // t = (f(v) - a) * b with f = identity, log10 or the power form.
        let range = normalization.range
        enum Kind { case linear, log, power(Double) }
        let kind: Kind
        let a: Double, b: Double
        switch normalization {
        case .linear:
            kind = .linear; a = range.lowerBound
            b = range.upperBound > range.lowerBound ? 1 / (range.upperBound - range.lowerBound) : 0
        case .power(let g, _):
            kind = .power(g); a = range.lowerBound
            b = range.upperBound > range.lowerBound ? 1 / (range.upperBound - range.lowerBound) : 0
        case .log:
            kind = .log
            let lo = max(range.lowerBound, .leastNormalMagnitude), hi = max(range.upperBound, lo)
            a = log10(lo); b = hi > lo ? 1 / (log10(hi) - log10(lo)) : 0
        }
        let explicitMask: [Bool]? = { if case .cells(let m) = mask { return m } else { return nil } }()
        let causal = mask == .causal
        data.values.withUnsafeBufferPointer { src in
            table.withUnsafeBufferPointer { lut in
                pixels.withUnsafeMutableBufferPointer { dst in
                    // Each iteration writes only its own row; the buffers outlive the call.
                    // Addresses cross into the @Sendable closure as integers (pointers are not Sendable).
                    let sAddr = Int(bitPattern: src.baseAddress!), dAddr = Int(bitPattern: dst.baseAddress!)
                    let lAddr = Int(bitPattern: lut.baseAddress!)
                    DispatchQueue.concurrentPerform(iterations: rows) { r in
                        let s = UnsafePointer<Float>(bitPattern: sAddr)!, d = UnsafeMutablePointer<UInt32>(bitPattern: dAddr)!
                        let l = UnsafePointer<UInt32>(bitPattern: lAddr)!
                        let row = s + r * cols, out = d + r * cols
                        let end = causal ? data.firstCausalMaskedColumn(row: r) : cols
                        switch kind {
                        case .linear:
                            for c in 0 ..< end {
                                let v = Double(row[c])
                                out[c] = v.isNaN ? maskHex : l[index((v - a) * b)]
                            }
                        case .log:
                            for c in 0 ..< end {
                                let v = Double(row[c])
                                out[c] = v.isNaN ? maskHex : (v > 0 ? l[index((log10(v) - a) * b)] : l[0])
                            }
                        case .power(let g):
                            for c in 0 ..< end {
                                let v = Double(row[c])
                                let u = (v - a) * b
                                out[c] = v.isNaN ? maskHex : l[u <= 0 ? 0 : index(pow(min(u, 1), g))]
                            }
                        }
                        for c in end ..< cols { out[c] = maskHex }
                        if let m = explicitMask {
                            for c in 0 ..< end where m[r * cols + c] { out[c] = maskHex }
                        }
                    }
                }
            }
        }
        return PixelImage(width: cols, height: rows, pixels: pixels)
    }

    @inline(__always)
    static func index(_ t: Double) -> Int {
        // ColorMap.index, inlined: clamp then round half away from zero.
        if !(t > 0) { return 0 }
        if t >= 1 { return 255 }
        return Int((t * 255).rounded())
    }
}
