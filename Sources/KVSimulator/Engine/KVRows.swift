import CKernels
import KVPolicies
import KVTrace

/// Keys or values `[KVH][T][D]` of one layer, read in place from the mapped tensor when it is
/// little-endian f16, f32 or f64 (converted exactly to `Double` inside the kernels), else
/// converted once to `Double`. Keeps the layer's storage alive.
// @unchecked: read-only after init; the raw pointers it hands the kernels point into `tensor`'s
// storage (or `converted`), which this value keeps alive.
struct KVRows: @unchecked Sendable {
    let tensor: Tensor
    /// Converted copy for the dtypes the kernels do not read directly.
    let converted: [Double]?
    let vtype: Int32
    let seqLen: Int, headDim: Int

    init(_ t: Tensor, seqLen: Int, headDim: Int) {
        tensor = t
        self.seqLen = seqLen
        self.headDim = headDim
        if let type = t.kernelElementType {
            vtype = type
            converted = nil
        } else {
            vtype = Int32(CK_F64)
            converted = t.doubles()
        }
    }

    /// Calls `body` with the first element of KV head `g` (element type `vtype`).
    func withHead<R>(_ g: Int, _ body: (UnsafeRawPointer) throws -> R) rethrows -> R {
        let start = g * seqLen * headDim
        if let c = converted { return try c.withUnsafeBufferPointer { try body(UnsafeRawPointer($0.baseAddress! + start)) } }
        return try body(tensor.storage.base + tensor.offset + start * tensor.dtype.width)
    }

    /// Vector `(g, p)` as `Double` into `out` (`D` elements).
    func load(_ g: Int, _ p: Int, into out: UnsafeMutablePointer<Double>) {
        let D = headDim
        if let c = converted { c.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + (g * seqLen + p) * D, count: D) }; return }
        tensor.copyDoubles(from: (g * seqLen + p) * D, count: D, into: out)
    }

    /// Rows of KV head `g` as `Double` into `out` (`T·D` elements).
    func copyHead(_ g: Int, into out: UnsafeMutablePointer<Double>) {
        let n = seqLen * headDim
        if let c = converted { c.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + g * n, count: n) }; return }
        tensor.copyDoubles(from: g * n, count: n, into: out)
    }

    /// `acc[r] ±= Σ_k w[r][pos[k]] · v_g[pos[k]]` for evaluation rows `firstRow ..< firstRow + rows`
    /// (absolute positions; `w` rows `ldw` apart, `acc` rows `D` apart), honouring the causal limit
    /// `p ≤ i` per row, each row's sum in the order of `pos` (see `Kernels.causal`: blocked calls
    /// where rows see the same positions, one call per row for the rest).
    func accumulateCausal(
        head g: Int, firstRow: Int, rows: Int, weights w: UnsafePointer<Double>, ldw: Int,
        positions pos: [Int], into acc: UnsafeMutablePointer<Double>, subtract: Bool
    ) {
        withHead(g) { v in
            Kernels.causal(columns: pos, positions: pos, firstRow: firstRow, rows: rows) { r, n, cols in
                ck_accum_rows(n, headDim, w + r * ldw, ldw, cols.baseAddress!, cols.count, v, vtype, acc + r * headDim, subtract ? 1 : 0)
            }
        }
    }
}
