import Foundation

/// The `Decodable` shape of `trace.json` and of a bare-array sidecar `<stem>.trace.json`.
///
/// Decoding errors become one line naming the key path, e.g.
/// `trace.json: model.num_heads: expected an integer`. Unknown keys are ignored, so a newer
/// exporter's extra fields (and fields added here later) never break older readers. To add a
/// field: add a property, a `CodingKeys` case and one `decode` line; required fields use
/// `decode`, optional ones `decodeIfPresent`. Integers are `JSONInt` (an integral JSON number,
/// `3` or `3.0`); free-form values (`recorder`) are `JSONValue`.
enum TraceJSON {
    /// `trace.json`: every field attn-trace v1 requires, plus the optional ones KVScope reads.
    struct Document: Decodable {
        var format: String
        var version: Int
        var name: String?
        var model: Model
        var causal: Bool
        var seqLen: Int
        var prefillLen: Int
        var queryRows: QueryRows
        var tokenModality: [Int]
        var images: [Span]
        var layerFiles: [String]?
        var syntheticImageTokens: Bool?
        /// Free-form provenance shown by `info`: kept only when a string.
        var notes: String?, generatedText: String?, colsumOver: String?
        /// Any JSON value (an object from the exporter, a string, …).
        var recorder: JSONValue?
        /// `position_ids`, `layer_attention`, `bidirectional_spans` (all optional).
        var layout: Layout

        enum CodingKeys: String, CodingKey {
            case format, version, name, model, causal, images, notes, recorder
            case seqLen = "seq_len", prefillLen = "prefill_len", queryRows = "query_rows"
            case tokenModality = "token_modality", layerFiles = "layer_files"
            case syntheticImageTokens = "synthetic_image_tokens", generatedText = "generated_text", colsumOver = "colsum_over"
        }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            format = try c.decode(String.self, forKey: .format)
            version = try c.decode(JSONInt.self, forKey: .version).value
            name = c.lenientString(.name)
            model = try c.decode(Model.self, forKey: .model)
            causal = try c.decode(Bool.self, forKey: .causal)
            seqLen = try c.decode(JSONInt.self, forKey: .seqLen).value
            prefillLen = try c.decode(JSONInt.self, forKey: .prefillLen).value
            queryRows = try c.decode(QueryRows.self, forKey: .queryRows)
            tokenModality = try c.decode([JSONInt].self, forKey: .tokenModality).map(\.value)
            images = try c.decode([Span].self, forKey: .images)
            layerFiles = try c.decodeIfPresent([String].self, forKey: .layerFiles)
            syntheticImageTokens = try c.decodeIfPresent(Bool.self, forKey: .syntheticImageTokens)
            notes = c.lenientString(.notes)
            generatedText = c.lenientString(.generatedText)
            colsumOver = c.lenientString(.colsumOver)
            recorder = try c.decodeIfPresent(JSONValue.self, forKey: .recorder)
            layout = try Layout(from: decoder)
        }
    }

    /// The optional layout keys of `trace.json` (see `TraceMetadata.applyLayoutExtensions`).
    struct Layout: Decodable {
        struct LayerAttention: Decodable {
            var layer: Int
            var window: Int?
            enum CodingKeys: String, CodingKey { case layer, window }
            init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                layer = try c.decode(JSONInt.self, forKey: .layer).value
                window = try c.decodeIfPresent(JSONInt.self, forKey: .window)?.value
            }
        }
        /// One row (`[T]`) or three rows (`[[T], [T], [T]]`, M-RoPE); nil for `0 ..< T`.
        var positionIDs: [[Int]]?
        var layerAttention: [LayerAttention]?
        var bidirectionalSpans: [[Int]]?

        enum CodingKeys: String, CodingKey {
            case positionIDs = "position_ids", layerAttention = "layer_attention", bidirectionalSpans = "bidirectional_spans"
        }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            if let rows = try? c.decodeIfPresent([[JSONInt]].self, forKey: .positionIDs) {
                positionIDs = rows.map { $0.map(\.value) }
            } else {
                positionIDs = try c.decodeIfPresent([JSONInt].self, forKey: .positionIDs).map { [$0.map(\.value)] }
            }
            layerAttention = try c.decodeIfPresent([LayerAttention].self, forKey: .layerAttention)
            bidirectionalSpans = try c.decodeIfPresent([[JSONInt]].self, forKey: .bidirectionalSpans)?.map { $0.map(\.value) }
        }
    }

    struct Model: Decodable {
        var name: String?
        var numLayers: Int
        var numHeads: Int
        var numKVHeads: Int
        var headDim: Int
        var kvHeadOfQueryHead: [Int]
        var attnScale: Double?

        enum CodingKeys: String, CodingKey {
            case name, numLayers = "num_layers", numHeads = "num_heads", numKVHeads = "num_kv_heads"
            case headDim = "head_dim", kvHeadOfQueryHead = "kv_head_of_query_head", attnScale = "attn_scale"
        }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = c.lenientString(.name)
            numLayers = try c.decode(JSONInt.self, forKey: .numLayers).value
            numHeads = try c.decode(JSONInt.self, forKey: .numHeads).value
            numKVHeads = try c.decode(JSONInt.self, forKey: .numKVHeads).value
            headDim = try c.decode(JSONInt.self, forKey: .headDim).value
            kvHeadOfQueryHead = try c.decode([JSONInt].self, forKey: .kvHeadOfQueryHead).map(\.value)
            attnScale = try? c.decodeIfPresent(Double.self, forKey: .attnScale)
        }
    }

    struct QueryRows: Decodable {
        var start: Int
        var stop: Int
        enum CodingKeys: String, CodingKey { case start, stop }
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            start = try c.decode(JSONInt.self, forKey: .start).value
            stop = try c.decode(JSONInt.self, forKey: .stop).value
        }
    }

    /// An image span or a tile of one: `[start, stop)`, an optional `[rows, cols]` grid and tiles.
    struct Span: Decodable {
        var start: Int
        var stop: Int
        var grid: [Int]?
        var imageId: Int?
        var tiles: [Span]
        var pseudo: Bool
        var source: String?
        var levels: [[Double]]?
        /// A tile's name ("base", "row 1 col 2", "global", …).
        var label: String?

        enum CodingKeys: String, CodingKey { case start, stop, grid, tiles, pseudo, source, levels, label, imageId = "image_id" }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            start = try c.decode(JSONInt.self, forKey: .start).value
            stop = try c.decode(JSONInt.self, forKey: .stop).value
            grid = try c.decodeIfPresent([JSONInt].self, forKey: .grid)?.map(\.value)
            imageId = try c.decodeIfPresent(JSONInt.self, forKey: .imageId)?.value
            tiles = try c.decodeIfPresent([Span].self, forKey: .tiles) ?? []
            pseudo = (try? c.decodeIfPresent(Bool.self, forKey: .pseudo)) ?? false
            source = c.lenientString(.source)
            levels = try c.decodeIfPresent([[Double]].self, forKey: .levels)
            label = c.lenientString(.label)
        }
    }

    /// A bare-array sidecar `<stem>.trace.json`: every field optional; flags override them.
    struct Sidecar: Decodable {
        struct SidecarModel: Decodable {
            var name: String?
            var kvHeadOfQueryHead: [Int]?
            var attnScale: Double?
            enum CodingKeys: String, CodingKey { case name, kvHeadOfQueryHead = "kv_head_of_query_head", attnScale = "attn_scale" }
            init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                name = c.lenientString(.name)
                kvHeadOfQueryHead = try c.decodeIfPresent([JSONInt].self, forKey: .kvHeadOfQueryHead)?.map(\.value)
                attnScale = try c.decodeIfPresent(Double.self, forKey: .attnScale)
            }
        }
        struct SidecarRows: Decodable {
            var start: Int?
            enum CodingKeys: String, CodingKey { case start }
            init(from decoder: Decoder) throws {
                start = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(JSONInt.self, forKey: .start)?.value
            }
        }
        var arrays: [String: String]
        var model: SidecarModel?
        var prefillLen: Int?
        var queryRows: SidecarRows?
        var tokenModality: [Int]?
        var images: [Span]?
        var causal: Bool?

        enum CodingKeys: String, CodingKey {
            case arrays, model, images, causal
            case prefillLen = "prefill_len", queryRows = "query_rows", tokenModality = "token_modality"
        }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            arrays = try c.decodeIfPresent([String: String].self, forKey: .arrays) ?? [:]
            model = try c.decodeIfPresent(SidecarModel.self, forKey: .model)
            prefillLen = try c.decodeIfPresent(JSONInt.self, forKey: .prefillLen)?.value
            queryRows = try c.decodeIfPresent(SidecarRows.self, forKey: .queryRows)
            tokenModality = try c.decodeIfPresent([JSONInt].self, forKey: .tokenModality)?.map(\.value)
            images = try c.decodeIfPresent([Span].self, forKey: .images)
            causal = try c.decodeIfPresent(Bool.self, forKey: .causal)
        }
    }

    /// Decodes `T` from JSON text; any failure is one `TraceError` naming `file` and the key path.
    static func decode<T: Decodable>(_ type: T.Type, from data: Data, file: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw TraceError(file: file, describe(error))
        } catch {
            throw TraceError(file: file, "not valid JSON")
        }
    }

    /// `model.num_heads: expected an integer`, `images[0].grid: missing`, `not valid JSON`.
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [CodingKey]) -> String {
            var s = ""
            for k in keys {
                if let i = k.intValue, k.stringValue.hasPrefix("Index") || k.stringValue == "\(i)" {
                    s += "[\(i)]"
                } else {
                    s += (s.isEmpty ? "" : ".") + k.stringValue.escapedForMessage
                }
            }
            return s.isEmpty ? "top level" : s
        }
        func what(_ t: Any.Type) -> String {
            if t is JSONInt.Type || t is Int.Type { return "an integer" }
            if t is String.Type { return "a string" }
            if t is Bool.Type { return "true or false" }
            if t is Double.Type { return "a number" }
            return "\(t)".hasPrefix("Array") ? "an array" : "an object"
        }
        switch error {
        case .typeMismatch(let t, let c): return "\(path(c.codingPath)): expected \(what(t))"
        case .valueNotFound(let t, let c): return "\(path(c.codingPath)): expected \(what(t)), found null"
        case .keyNotFound(let k, let c): return "\(path(c.codingPath + [k])): missing"
        case .dataCorrupted(let c):
            return c.codingPath.isEmpty ? "not valid JSON" : "\(path(c.codingPath)): \(c.debugDescription.escapedForMessage)"
        @unknown default: return "not valid JSON"
        }
    }
}

/// An integer in JSON: `3`, or an integral number such as `3.0` (Python's json writes floats
/// for numpy integers cast to float). Fractions, values beyond ±2⁶³ and non-numbers are refused.
struct JSONInt: Decodable {
    var value: Int
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int.self) { value = i; return }
        if let d = try? c.decode(Double.self), d.isFinite, d == d.rounded(), abs(d) < 9.0e18 { value = Int(d); return }
        throw DecodingError.typeMismatch(JSONInt.self, .init(codingPath: decoder.codingPath, debugDescription: "expected an integer"))
    }
}

/// Any JSON value, kept for display; re-encoded with sorted keys (deterministic text).
indirect enum JSONValue: Codable, Equatable {
    case null, bool(Bool), int(Int), double(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) {
            self = .double(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// Compact JSON text with sorted keys.
    var text: String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? e.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }
}

extension KeyedDecodingContainer {
    /// The value of `key` when it is a string; absent, null or another type gives nil.
    func lenientString(_ key: Key) -> String? { (try? decodeIfPresent(String.self, forKey: key)) ?? nil }
}
