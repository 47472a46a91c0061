import CKernels
import Foundation
import KVTrace

// The keys and values of the candidate positions `0 ..< P`, and the key norms.
extension LayerContext {
    /// Keys of positions `0 ..< P`, `[KVH][P][D]`.
    public func keys() throws -> KVBlock {
        guard let k = tensors.keys else { throw missing("k", "cached keys") }
        return block(k)
    }

    /// Values of positions `0 ..< P`, `[KVH][P][D]`.
    public func values() throws -> KVBlock {
        guard let v = tensors.values else { throw missing("v", "cached values") }
        return block(v)
    }

    func block(_ t: Tensor) -> KVBlock {
        let G = kvHeads, P = compressionPoint, D = headDim
        let v = [Double](unsafeUninitializedCapacity: G * P * D) { buf, n in
            let out = UnsafeSendableBox(buf.baseAddress!)
            parallelFor(G) { g in copyHeadRows(t, head: g, into: out.value + g * P * D) }
            n = G * P * D
        }
        return KVBlock(heads: G, count: P, dim: D, values: v)
    }

    /// Rows `0 ..< P` of KV head `g` of a `[KVH][T][D]` tensor (keys or values), as `Double`, into
    /// `out` (`P·D` elements).
    func copyHeadRows(_ t: Tensor, head g: Int, into out: UnsafeMutablePointer<Double>) {
        let T = info.shape.seqLen, D = headDim, P = compressionPoint
        t.copyDoubles(from: g * T * D, count: P * D, into: out)
    }

    /// L2 norms of the keys of positions `0 ..< P`, `[KVH][P]`: from `k_norm`, else from `k`.
    public func keyNorms() throws -> ScoreMatrix {
        let G = kvHeads, T = info.shape.seqLen, P = compressionPoint
        if let n = tensors.keyNorms {
            var out = ScoreMatrix(rows: G, count: P)
            out.values.withUnsafeMutableBufferPointer { b in
                for g in 0 ..< G { n.copyDoubles(from: g * T, count: P, into: b.baseAddress! + g * P) }
            }
            return out
        }
        guard tensors.keys != nil else { throw missing("k", "key norms (k_norm or k)") }
        let k = try keys()
        var out = ScoreMatrix(rows: G, count: P)
        k.values.withUnsafeBufferPointer { kb in
            for g in 0 ..< G {
                for j in 0 ..< P {
                    let p = kb.baseAddress! + k.offset(g, j)
                    out[g, j] = dot(p, p, k.dim).squareRoot()
                }
            }
        }
        return out
    }
}
