/// A dense row-major `[rows][count]` matrix of `Double` scores (e.g. `[H][P]` or `[KVH][P]`).
public struct ScoreMatrix: Sendable, Equatable {
    public var rows: Int
    public var count: Int
    public var values: [Double]

    public init(rows: Int, count: Int, values: [Double]) {
        precondition(values.count == rows * count)
        self.rows = rows
        self.count = count
        self.values = values
    }
    public init(rows: Int, count: Int, repeating v: Double = 0) {
        self.init(rows: rows, count: count, values: [Double](repeating: v, count: rows * count))
    }
    public subscript(r: Int, j: Int) -> Double {
        get { values[r * count + j] }
        set { values[r * count + j] = newValue }
    }
    public func row(_ r: Int) -> ArraySlice<Double> { values[r * count ..< (r + 1) * count] }
}

/// Keys or values of one layer, positions `0 ..< count`, as `[heads][count][dim]` Doubles.
public struct KVBlock: Sendable, Equatable {
    public var heads: Int
    public var count: Int
    public var dim: Int
    public var values: [Double]

    public init(heads: Int, count: Int, dim: Int, values: [Double]) {
        precondition(values.count == heads * count * dim)
        self.heads = heads
        self.count = count
        self.dim = dim
        self.values = values
    }
    /// Flat offset of vector `(g, j)`.
    @inlinable public func offset(_ g: Int, _ j: Int) -> Int { (g * count + j) * dim }
    public func vector(_ g: Int, _ j: Int) -> ArraySlice<Double> { values[offset(g, j) ..< offset(g, j) + dim] }
}

/// Attention rows `[heads][rows][columns]`: row `i` of `positions` is query position
/// `positions.lowerBound + i`; columns are key positions `0 ..< columns`.
public struct RowBlock: Sendable, Equatable {
    public var heads: Int
    public var positions: Range<Int>
    public var columns: Int
    public var values: [Double]
    /// True when the rows were recomputed from `q` and `k` rather than read from `attn`.
    public var recomputed: Bool

    @inlinable public func offset(_ h: Int, _ i: Int) -> Int { (h * positions.count + i) * columns }
    public subscript(h: Int, i: Int, j: Int) -> Double { values[offset(h, i) + j] }
}
