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
extension TraceMetadata {
    static func parseLayoutExtensions(_ j: [String: Any], into info: inout TraceInfo, file: String) throws {
        func fail(_ m: String) -> TraceError { TraceError(file: file, m) }
        let T = info.shape.seqLen
        func ints(_ v: Any, _ path: String) throws -> [Int] {
            guard let a = v as? [Any] else { throw fail("'\(path)' must be an array of integers") }
            return try a.map { x in
                guard let i = SafeTensorsFile.intValue(x) else { throw fail("'\(path)' must hold integers") }
                return i
            }
        }
        if let p = j["position_ids"], !(p is NSNull) {
            guard let arr = p as? [Any] else { throw fail("'position_ids' must be null, [T] or [3, T] integers") }
            let rows = arr.first is [Any] ? try arr.enumerated().map { try ints($0.element, "position_ids[\($0.offset)]") }
                                           : [try ints(arr, "position_ids")]
            guard !rows.isEmpty, rows.allSatisfy({ $0.count == T }) else {
                throw fail("position_ids rows must each hold seq_len = \(T) ids, found \(rows.map(\.count))")
            }
            info.positionIDs = rows
        }
        if let la = j["layer_attention"] {
            guard let list = la as? [Any] else { throw fail("'layer_attention' must be a list of objects") }
            for (n, e) in list.enumerated() {
                guard let o = e as? [String: Any], let layer = o["layer"].flatMap(SafeTensorsFile.intValue) else {
                    throw fail("layer_attention[\(n)] needs an integer 'layer'")
                }
                guard layer >= 0, layer < info.shape.layers else {
                    throw fail("layer_attention[\(n)].layer \(layer) is outside 0 ..< \(info.shape.layers) (num_layers)")
                }
                if let w = o["window"], !(w is NSNull) {
                    guard let wi = SafeTensorsFile.intValue(w), wi >= 1 else {
                        throw fail("layer_attention[\(n)].window must be null or an integer ≥ 1")
                    }
                    info.slidingWindows[layer] = wi
                }
            }
        }
        if let bs = j["bidirectional_spans"] {
            guard let list = bs as? [Any] else { throw fail("'bidirectional_spans' must be a list of [start, stop]") }
            info.bidirectionalSpans = try list.enumerated().map { n, e in
                let v = try ints(e, "bidirectional_spans[\(n)]")
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
