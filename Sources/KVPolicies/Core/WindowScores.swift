import KVTrace

/// Pooling of window scores along positions (stride 1, padding `⌊kernel/2⌋`).
public enum Pooling: String, Sendable, Hashable, Codable, CaseIterable {
    /// Max over the in-range terms (padding `−∞` never wins).
    case max
    /// Sum of the in-range terms divided by the kernel size (zero padding).
    case avg
}

/// SnapKV's window score: `u[h, j] = Σ_{i∈[P−w,P)} A[h, i, j]` for `j < P−w`, pooled per query head.
/// Written once for `snapkv` (and PyramidKV and Ada-KV, which score with it) and `snapkv-lookm`.
enum WindowScores {
    /// `u` per query head `[H][P−w]` from the given rows.
    static func sum(_ rows: RowBlock, prefix n: Int) -> ScoreMatrix {
        var u = ScoreMatrix(rows: rows.heads, count: n)
        rows.values.withUnsafeBufferPointer { src in
            for h in 0 ..< rows.heads {
                for i in 0 ..< rows.positions.count {
                    let r = src.baseAddress! + rows.offset(h, i)
                    for j in 0 ..< n { u.values[h * n + j] += r[j] }
                }
            }
        }
        return u
    }

    static func pool(_ u: ScoreMatrix, kernel: Int, _ mode: Pooling) -> ScoreMatrix {
        let n = u.count, half = kernel / 2
        var out = ScoreMatrix(rows: u.rows, count: n)
        for h in 0 ..< u.rows {
            for j in 0 ..< n {
                let lo = Swift.max(0, j - half), hi = Swift.min(n - 1, j + half)
                switch mode {
                case .max:
                    var m = -Double.infinity
                    for t in lo ... hi { m = Swift.max(m, u[h, t]) }
                    out[h, j] = m
                case .avg:
                    var s = 0.0
                    for t in lo ... hi { s += u[h, t] }
                    out[h, j] = s / Double(kernel)
                }
            }
        }
        return out
    }
}
