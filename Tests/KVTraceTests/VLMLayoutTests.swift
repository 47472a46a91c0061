import Foundation
import Testing
@testable import KVTrace

/// trace.json as VLM exporters write it: tiled images with text between the tiles, tile labels,
/// M-RoPE position ids, sliding-window layers and bidirectional spans.
@Suite("VLM layout")
struct VLMLayoutTests {
    /// T = 14: text 0–1, tile [2, 6), tags 6–7, tile [8, 12), text 12–13.
    static func json(_ edit: (inout [String: Any]) -> Void = { _ in }) throws -> Data {
        var modality = [Int](repeating: 0, count: 14)
        for p in Array(2 ..< 6) + Array(8 ..< 12) { modality[p] = 1 }
        var j: [String: Any] = [
            "format": "attn-trace", "version": 1,
            "model": [
                "name": "m", "num_layers": 3, "num_heads": 2, "num_kv_heads": 1, "head_dim": 4,
                "kv_head_of_query_head": [0, 0],
            ],
            "causal": true, "seq_len": 14, "prefill_len": 12, "query_rows": ["start": 0, "stop": 14],
            "token_modality": modality,
            "images": [
                [
                    "image_id": 0, "start": 2, "stop": 12, "grid": [1, 8],
                    "tiles": [
                        ["start": 2, "stop": 6, "grid": [2, 2], "label": "row 1 col 1"],
                        ["start": 8, "stop": 12, "grid": [2, 2], "label": "global"],
                    ],
                ]
            ],
        ]
        edit(&j)
        return try JSONSerialization.data(withJSONObject: j)
    }

    static func parse(_ d: Data) throws -> TraceInfo { try TraceMetadata.parse(d, file: "/t/trace.json").info }

    @Test func tilesMayHaveTextBetweenThem() throws {
        let info = try Self.parse(Self.json())
        let img = try #require(info.images.first)
        #expect(img.tiles.map(\.label) == ["row 1 col 1", "global"])
        #expect(img.tiles.map(\.grid) == [GridSize(rows: 2, cols: 2), GridSize(rows: 2, cols: 2)])
        #expect(img.tokenRanges == [2 ..< 6, 8 ..< 12])
        let ids = info.imageIdOfPosition
        #expect(ids[2] == 0 && ids[11] == 0)
        #expect(ids[6] == nil && ids[7] == nil)  // the tags between tiles are text
        #expect(info.positionIDs == nil && info.slidingWindows.isEmpty && info.bidirectionalSpans.isEmpty)
    }

    @Test func tileOverTextIsRefused() throws {
        let d = try Self.json { j in
            j["images"] = [["image_id": 0, "start": 2, "stop": 12, "tiles": [["start": 2, "stop": 8, "grid": [2, 3]]]]]
        }
        let e = #expect(throws: TraceError.self) { try Self.parse(d) }
        #expect(e?.description.contains("covers text position 6") == true, "\(e?.description ?? "")")
    }

    @Test func tilesOutOfOrderAreRefused() throws {
        let d = try Self.json { j in
            j["images"] = [
                [
                    "image_id": 0, "start": 2, "stop": 12,
                    "tiles": [["start": 8, "stop": 12, "grid": [2, 2]], ["start": 2, "stop": 6, "grid": [2, 2]]],
                ]
            ]
        }
        let e = #expect(throws: TraceError.self) { try Self.parse(d) }
        #expect(e?.description.contains("tiles of image 0 overlap or are out of order") == true)
    }

    @Test func layoutExtensionsParseAndRoundTrip() throws {
        let pos = [Array(0 ..< 14), Array(0 ..< 14).map { $0 / 2 }, Array(0 ..< 14).map { $0 % 3 }]
        let d = try Self.json { j in
            j["position_ids"] = pos
            j["layer_attention"] = [
                ["layer": 0, "type": "sliding_attention", "window": 4, "cached_keys": 4],
                ["layer": 2, "type": "full_attention", "window": NSNull(), "cached_keys": 14],
            ]
            j["bidirectional_spans"] = [[2, 6]]
        }
        let info = try Self.parse(d)
        #expect(info.positionIDs == pos)
        #expect(info.slidingWindows == [0: 4])
        #expect(info.bidirectionalSpans == [2 ..< 6])
        let again = try Self.parse(try TraceMetadata.encode(TraceMetadata.object(for: info, layerFiles: nil)))
        #expect(again.positionIDs == pos && again.slidingWindows == [0: 4] && again.bidirectionalSpans == [2 ..< 6])
        #expect(again.images.first?.tiles.map(\.label) == ["row 1 col 1", "global"])
        // one row of ids
        let one = try Self.parse(try Self.json { $0["position_ids"] = Array(5 ..< 19) })
        #expect(one.positionIDs == [Array(5 ..< 19)])
    }

    @Test(arguments: [
        ("position_ids", "[[1, 2, 3]]", "position_ids rows must each hold seq_len = 14"),
        ("position_ids", "\"x\"", "/t/trace.json: position_ids: expected an array"),
        ("layer_attention", "[{\"layer\": 5, \"window\": 4}]", "layer_attention[0].layer 5 is outside 0 ..< 3"),
        ("layer_attention", "[{\"layer\": 0, \"window\": 0}]", "window must be null or an integer ≥ 1"),
        ("bidirectional_spans", "[[10, 20]]", "bidirectional_spans[0] must be [start, stop] with 0 ≤ start < stop ≤ 14"),
    ])
    func badExtensionsAreRefused(_ key: String, _ valueJSON: String, _ message: String) throws {
        let value = try JSONSerialization.jsonObject(with: Data(valueJSON.utf8), options: .fragmentsAllowed)
        let d = try Self.json { $0[key] = value }
        let e = #expect(throws: TraceError.self) { try Self.parse(d) }
        #expect(e?.description.contains(message) == true, "\(e?.description ?? "")")
        #expect(e?.description.contains("\n") == false)
    }
}
