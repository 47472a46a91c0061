import Foundation

/// Optional `trace.json` keys that describe how a model laid out its sequence, beyond `0 ..< T`
/// and the plain causal mask. All are optional; traces without them read as before.
///
/// * `position_ids`: null (or absent) for `0 ..< T`; else `[T]` integers, or `[[T], [T], [T]]`
///   (temporal, height, width) for M-RoPE.
/// * `layer_attention`: a list of `{layer, type, window, cached_keys}`; `window` (an integer ≥ 1,
///   or null for a full layer) is the sliding window: row `i` reads keys `i − window + 1 … i`.
/// * `bidirectional_spans`: a list of half-open `[start, stop]` spans whose tokens also read the
///   later tokens of the same span (Gemma 3 images).
///
/// They are decoded with `TraceJSON.Layout` (errors name the key path); the checks that need the
/// rest of the trace (`seq_len`, `num_layers`) are here.
extension TraceMetadata {
    static func applyLayoutExtensions(_ j: TraceJSON.Layout, into info: inout TraceInfo, file: String) throws {
        func fail(_ m: String) -> TraceError { TraceError(file: file, m) }
        let T = info.shape.seqLen
        if let rows = j.positionIDs {
            guard !rows.isEmpty, rows.allSatisfy({ $0.count == T }) else {
                throw fail("position_ids rows must each hold seq_len = \(T) ids, found \(rows.map(\.count))")
            }
            info.positionIDs = rows
        }
        for (n, e) in (j.layerAttention ?? []).enumerated() {
            guard e.layer >= 0, e.layer < info.shape.layers else {
                throw fail("layer_attention[\(n)].layer \(e.layer) is outside 0 ..< \(info.shape.layers) (num_layers)")
            }
            if let w = e.window {
                guard w >= 1 else { throw fail("layer_attention[\(n)].window must be null or an integer ≥ 1") }
                info.slidingWindows[e.layer] = w
            }
        }
        if let spans = j.bidirectionalSpans {
            info.bidirectionalSpans = try spans.enumerated().map { n, v in
                guard v.count == 2, v[0] >= 0, v[0] < v[1], v[1] <= T else {
                    throw fail("bidirectional_spans[\(n)] must be [start, stop] with 0 ≤ start < stop ≤ \(T)")
                }
                return v[0] ..< v[1]
            }
        }
    }

    /// The keys above for `info` (none when it has no such layout).
    static func layoutExtensionObject(_ info: TraceInfo) -> [String: Any] {
        var o: [String: Any] = [:]
        if let p = info.positionIDs { o["position_ids"] = p.count == 1 ? p[0] : p }
        if !info.slidingWindows.isEmpty {
            o["layer_attention"] = info.slidingWindows.keys.sorted().map { l -> [String: Any] in
                let w = info.slidingWindows[l]!
                return ["layer": l, "type": "sliding_attention", "window": w, "cached_keys": min(info.shape.seqLen, w)]
            }
        }
        if !info.bidirectionalSpans.isEmpty {
            o["bidirectional_spans"] = info.bidirectionalSpans.map { [$0.lowerBound, $0.upperBound] }
        }
        return o
    }
}
