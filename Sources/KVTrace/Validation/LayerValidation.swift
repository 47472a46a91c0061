/// Shape and dtype checks of one layer's tensors against the trace's metadata (docs/trace-format.md#validation).
public enum LayerValidation {
    /// Throws the first mismatch, naming the file, layer and tensor with expected against found.
    public static func check(_ t: LayerTensors, info: TraceInfo) throws {
        let s = info.shape
        let q = s.queryRows.count
        let expected: [(String, Tensor?, [Int], Set<DType>)] = [
            ("attn", t.attention, [s.queryHeads, q, s.seqLen], [.f16, .bf16, .f32, .f64]),
            ("attn_colsum", t.colsum, [s.queryHeads, s.seqLen], [.f16, .bf16, .f32, .f64]),
            ("q", t.queries, [s.queryHeads, q, s.headDim], [.f16, .bf16, .f32, .f64]),
            ("k", t.keys, [s.kvHeads, s.seqLen, s.headDim], [.f16, .bf16, .f32, .f64]),
            ("v", t.values, [s.kvHeads, s.seqLen, s.headDim], [.f16, .bf16, .f32, .f64]),
            ("k_norm", t.keyNorms, [s.kvHeads, s.seqLen], [.f16, .bf16, .f32, .f64]),
            ("v_norm", t.valueNorms, [s.kvHeads, s.seqLen], [.f16, .bf16, .f32, .f64]),
        ]
        for (name, tensor, shape, dtypes) in expected {
            guard let tensor else { continue }
            guard dtypes.contains(tensor.dtype) else {
                throw TraceError(
                    file: t.file, layer: t.layer, tensor: name, "dtype \(tensor.dtype.rawValue) is not allowed (expected a float type)")
            }
            guard tensor.shape == shape else {
                throw TraceError(
                    file: t.file, layer: t.layer, tensor: name,
                    "shape \(tensor.shape.shapeText) does not match the trace: expected \(shape.shapeText) ([\(dims(name))])")
            }
        }
        guard t.attention != nil || t.colsum != nil || (t.queries != nil && t.keys != nil) else {
            throw TraceError(file: t.file, layer: t.layer, "the layer has none of attn, attn_colsum, or q with k")
        }
    }

    static func dims(_ name: String) -> String {
        switch name {
        case "attn": "H, Q, T"
        case "attn_colsum": "H, T"
        case "q": "H, Q, D"
        case "k", "v": "KVH, T, D"
        default: "KVH, T"
        }
    }

    /// NaN / ±Inf in `attn`, `attn_colsum`, `q`, `k` or `v` is an error.
    public static func checkFinite(_ t: LayerTensors) throws {
        for (name, tensor) in t.named where !name.hasSuffix("_norm") {
            if let i = tensor.firstNonFinite() {
                throw TraceError(file: t.file, layer: t.layer, tensor: name, "holds NaN or Inf (flat index \(i))")
            }
        }
    }
}
