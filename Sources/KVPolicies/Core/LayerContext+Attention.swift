import CKernels
import Foundation
import KVTrace

// The attention a policy reads: column sums, their per-KV-head and count-normalised forms, and
// attention rows (recorded, or recomputed from q and k).
extension LayerContext {
    /// The column sums combined per KV head under `--gqa`, `[KVH][P]`, shared through the cache.
    public func aggregatedColsum() throws -> ScoreMatrix {
        try shared(["colsum", options.gqa.rawValue] as [String]) {
            aggregateGQA(try colsum(), map: kvHeadOfQueryHead, kvHeads: kvHeads, options.gqa)
        }
    }

    /// `s[h, j] = Σ_{i<P} A[h, i, j]` for `j < P`, per query head: `[H][P]`.
    /// Read from `attn_colsum` when `P` is the prefill length, else summed from the `attn` rows
    /// `0 ..< P` (or taken from the sums the `.npz` reader gathered from them while it checked the
    /// member's CRC: the same bits), else recomputed from `q` and `k`.
    public func colsum() throws -> ScoreMatrix {
        let H = queryHeads, P = compressionPoint, T = info.shape.seqLen
        if let c = tensors.colsum, P == info.shape.prefillLen {
            var out = ScoreMatrix(rows: H, count: P)
            out.values.withUnsafeMutableBufferPointer { buf in
                for h in 0 ..< H { c.copyDoubles(from: h * T, count: P, into: buf.baseAddress! + h * P) }
            }
            return out
        }
        let qr = info.shape.queryRows
        if tensors.attention != nil && qr.lowerBound <= 0 && qr.upperBound >= P
            || tensors.queries != nil && tensors.keys != nil && qr.lowerBound <= 0 && qr.upperBound >= P
        {
            // Gathered by the reader while it checked the archive's CRC (a stored float32 member).
            if let s = tensors.attentionColumnSums, tensors.attention != nil, s.prefill == P, qr.lowerBound == 0,
                s.values.count == H * P
            {
                return ScoreMatrix(rows: H, count: P, values: s.values)
            }
            var out = ScoreMatrix(rows: H, count: P)
            // Float32 attention (the common case): summed straight from the mapped rows into Double,
            // one head per task, rows in ascending order: the same additions as below, no widened copy.
            if let a = tensors.attention, a.dtype == .f32, !a.byteSwapped {
                let Q = qr.count
                let src = UnsafeSendableBox(a.storage.base + a.offset)
                out.values.withUnsafeMutableBufferPointer { dst in
                    let d0 = UnsafeSendableBox(dst.baseAddress!)
                    parallelFor(H) { h in ck_colsum_f32(src.value + h * Q * T * 4, P, T, P, d0.value + h * P) }
                }
                return out
            }
            // Sum in chunks of rows to bound memory.
            let chunk = max(1, min(P, 4_000_000 / max(1, H * T)))
            var start = 0
            while start < P {
                let end = min(P, start + chunk)
                let block = try rows(start ..< end)
                block.values.withUnsafeBufferPointer { src in
                    out.values.withUnsafeMutableBufferPointer { dst in
                        // One head per task; each sum still runs over the rows in ascending order.
                        let d0 = UnsafeSendableBox(dst.baseAddress!)
                        parallelFor(H) { h in
                            let d = d0.value + h * P
                            for i in 0 ..< block.positions.count {
                                let s = src.baseAddress! + block.offset(h, i)
                                for j in 0 ..< P { d[j] += s[j] }
                            }
                        }
                    }
                }
                start = end
            }
            return out
        }
        throw missing("attn_colsum", "prefill column sums, or attn rows 0..<\(P), or q rows 0..<\(P) with k")
    }

    /// The mean attention position `j` receives per prefill row that can see it,
    /// `colsum[h, j] / (P − j)`, per query head `[H][P]` (count-normalised accumulated attention:
    /// late positions are not penalised for having fewer rows after them).
    public func meanReceived() throws -> ScoreMatrix {
        var s = try colsum()
        let P = compressionPoint
        for h in 0 ..< s.rows { for j in 0 ..< P { s[h, j] /= Double(P - j) } }
        return s
    }

    /// Attention rows for query positions `positions`, all `T` key columns: from the recorded
    /// `attn` when it covers them, else recomputed from `q` and `k` (causal softmax in `Double`).
    public func rows(_ positions: Range<Int>) throws -> RowBlock {
        let H = queryHeads, T = info.shape.seqLen
        let qr = info.shape.queryRows
        let covered = positions.lowerBound >= qr.lowerBound && positions.upperBound <= qr.upperBound
        if covered, let a = tensors.attention {
            let R = positions.count, Q = qr.count
            let v = [Double](unsafeUninitializedCapacity: H * R * T) { buf, n in
                let out = UnsafeSendableBox(buf.baseAddress!)
                parallelFor(H) { h in
                    a.copyDoubles(
                        from: (h * Q + positions.lowerBound - qr.lowerBound) * T, count: R * T, into: out.value + h * R * T)
                }
                n = H * R * T
            }
            return RowBlock(heads: H, positions: positions, columns: T, values: v, recomputed: false)
        }
        if covered, tensors.queries != nil, tensors.keys != nil {
            return try recomputedRows(positions, scale: info.attnScale, floatSoftmax: false)
        }
        let what = positions.count == 1 ? "row \(positions.lowerBound)" : "rows \(positions.lowerBound)..<\(positions.upperBound)"
        if !covered {
            throw missing("attn", "attention \(what); the trace records rows \(qr.lowerBound)..<\(qr.upperBound)")
        }
        throw missing(tensors.queries == nil ? "attn" : "k", "attention \(what), or q for them with k")
    }

    /// Recomputes attention rows from `q` (rows `positions`) and `k`: logits `scale·q·k` in
    /// `Double`, causal mask `j ≤ i`, softmax in `Double` (or in `Float` after rounding the logits,
    /// as the official SnapKV class does).
    public func recomputedRows(_ positions: Range<Int>, scale: Double, floatSoftmax: Bool) throws -> RowBlock {
        let H = queryHeads, T = info.shape.seqLen, D = headDim
        let qr = info.shape.queryRows
        guard let q = tensors.queries else { throw missing("q", "queries of rows \(positions.lowerBound)..<\(positions.upperBound)") }
        guard let k = tensors.keys else { throw missing("k", "keys to recompute attention") }
        guard positions.lowerBound >= qr.lowerBound, positions.upperBound <= qr.upperBound else {
            throw missing(
                "q",
                "queries of rows \(positions.lowerBound)..<\(positions.upperBound); the trace records \(qr.lowerBound)..<\(qr.upperBound)")
        }
        let R = positions.count, Q = qr.count
        let causal = info.causal
        let map = kvHeadOfQueryHead
        var out = [Double](repeating: 0, count: H * R * T)
        let keyBlocks: [[Double]] = (0 ..< kvHeads).map { g in
            [Double](unsafeUninitializedCapacity: T * D) { b, n in
                k.copyDoubles(from: g * T * D, count: T * D, into: b.baseAddress!); n = T * D
            }
        }
        // One task per head and group of `rowsPerTask` rows; the keys are visited in chunks of
        // `keysPerChunk` that stay in cache while every row of the group is dotted with them.
        let rowsPerTask = 16, keysPerChunk = 256
        let groups = (R + rowsPerTask - 1) / rowsPerTask
        out.withUnsafeMutableBufferPointer { ob in
            let optr = UnsafeSendableBox(ob.baseAddress!)
            parallelFor(H * groups) { task in
                let h = task / groups, i0 = task % groups * rowsPerTask, i1 = min(R, i0 + rowsPerTask)
                var qv = [Double](repeating: 0, count: (i1 - i0) * D)
                qv.withUnsafeMutableBufferPointer {
                    q.copyDoubles(
                        from: (h * Q + positions.lowerBound + i0 - qr.lowerBound) * D, count: (i1 - i0) * D, into: $0.baseAddress!)
                }
                func width(_ i: Int) -> Int { causal ? min(positions.lowerBound + i + 1, T) : T }
                let widest = (i0 ..< i1).map(width).max() ?? 0
                keyBlocks[map[h]].withUnsafeBufferPointer { kb in
                    qv.withUnsafeBufferPointer { qb in
                        // row[j] = dot(q, k_j), by the kernel in `dot`'s own order.
                        for j0 in stride(from: 0, to: widest, by: keysPerChunk) {
                            for i in i0 ..< i1 where width(i) > j0 {
                                let row = optr.value + (h * R + i) * T
                                let m = min(keysPerChunk, width(i) - j0)
                                ck_dot_rows(1, m, D, qb.baseAddress! + (i - i0) * D, D, kb.baseAddress! + j0 * D, D, row + j0, m)
                            }
                        }
                    }
                }
                for i in i0 ..< i1 {
                    let row = optr.value + (h * R + i) * T
                    let n = width(i)
                    for j in 0 ..< n { row[j] = scale * row[j] }
                    if floatSoftmax {
                        var f = (0 ..< n).map { Float(row[$0]) }
                        f.withUnsafeMutableBufferPointer { Softmax.normalize($0.baseAddress!, n) }
                        for j in 0 ..< n { row[j] = Double(f[j]) }
                    } else {
                        Softmax.normalize(row, n)
                    }
                }
            }
        }
        return RowBlock(heads: H, positions: positions, columns: T, values: out, recomputed: true)
    }
}
