import Foundation

/// Data checks of docs/trace-format.md#validation that need the tensors: non-finite values (errors), row sums,
/// the causal mask and stored-versus-recomputed column sums (warnings). `kvscope info` runs them on
/// every layer without stopping at the first finding.
public struct LayerInspection: Sendable, Codable {
    public var layer: Int
    /// Largest `|Σ_j A[h,i,j] − 1|` over recorded rows (nil without `attn`).
    public var maxRowSumError: Double?
    /// Largest entry above the diagonal in a causal trace.
    public var maxAboveDiagonal: Double?
    /// Largest `|stored − recomputed|` column sum, when `attn` holds every prefill row.
    public var maxColsumError: Double?
    public var errors: [String] = []
    public var warnings: [String] = []

    /// Row-sum tolerance: 1e-2 for 16-bit storage, 1e-4 otherwise.
    public static func rowTolerance(_ d: DType) -> Double { d.width <= 2 ? 1e-2 : 1e-4 }

    public init(_ t: LayerTensors, info: TraceInfo) {
        layer = t.layer
        for (name, tensor) in t.named where !name.hasSuffix("_norm") {
            if let i = tensor.firstNonFinite() { errors.append("tensor '\(name)' holds NaN or Inf (flat index \(i))") }
        }
        guard let a = t.attention else { return }
        let s = info.shape
        let T = s.seqLen, Q = s.queryRows.count, H = s.queryHeads, q0 = s.queryRows.lowerBound
        var rowErr = 0.0, above = 0.0
        var row = [Float](repeating: 0, count: T)
        let coversPrefill = q0 == 0 && Q >= s.prefillLen
        var colsum = [Double](repeating: 0, count: coversPrefill && t.colsum != nil ? H * T : 0)
        row.withUnsafeMutableBufferPointer { r in
            for h in 0 ..< H {
                for i in 0 ..< Q {
                    a.copyFloats(from: (h * Q + i) * T, count: T, into: r.baseAddress!)
                    var sum = 0.0
                    for j in 0 ..< T { sum += Double(r[j]) }
                    rowErr = max(rowErr, abs(sum - 1))
                    let pos = q0 + i
                    // a bidirectional span's tokens may read the rest of their span
                    let from = info.bidirectionalSpans.first { $0.contains(pos) }?.upperBound ?? (pos + 1)
                    if info.causal, from < T {
                        for j in from ..< T { above = max(above, Double(abs(r[j]))) }
                    }
                    if !colsum.isEmpty, pos < s.prefillLen {
                        for j in 0 ..< T { colsum[h * T + j] += Double(r[j]) }
                    }
                }
            }
        }
        if Q > 0 {
            maxRowSumError = rowErr
            let tol = Self.rowTolerance(a.dtype)
            if rowErr > tol || rowErr.isNaN {
                warnings.append(String(format: "attention rows do not sum to 1 (max error %.3g > %.0e)", rowErr, tol))
            }
        }
        if info.causal {
            maxAboveDiagonal = above
            if above > 1e-6 { warnings.append(String(format: "nonzero attention above the diagonal (max %.3g) in a causal trace", above)) }
        }
        if let c = t.colsum, !colsum.isEmpty {
            let stored = c.doubles()
            var worst = 0.0, worstRel = 0.0
            for i in 0 ..< stored.count {
                let d = abs(stored[i] - colsum[i])
                worst = max(worst, d)
                worstRel = max(worstRel, d / max(1, abs(stored[i])))
            }
            maxColsumError = worst
            if worstRel > 1e-2 {
                warnings.append(
                    String(
                        format: "stored attn_colsum differs from the sum of prefill rows by up to %.3g (taken over the wrong rows?)", worst)
                )
            }
        }
    }
}
