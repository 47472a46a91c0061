import Foundation

/// Reads and writes `trace.json` (docs/trace-format.md#metadata-tracejson). Unknown keys are ignored.
public enum TraceMetadata {
    /// Parses the JSON text of `trace.json` (decoded with `TraceJSON.Document`; errors name the
    /// key path). `layerFiles` is returned for the folder variant.
    public static func parse(_ data: Data, file: String) throws -> (info: TraceInfo, layerFiles: [String]?) {
        let j = try TraceJSON.decode(TraceJSON.Document.self, from: data, file: file)
        func fail(_ m: String) -> TraceError { TraceError(file: file, m) }
        guard j.format == "attn-trace" else { throw fail("format: expected \"attn-trace\", found \"\(j.format.escapedForMessage)\"") }
        guard j.version == 1 else { throw fail("version: expected 1, found \(j.version)") }
        let m = j.model
        for (key, v) in [("num_layers", m.numLayers), ("num_heads", m.numHeads), ("num_kv_heads", m.numKVHeads), ("head_dim", m.headDim)]
        where v < 1 {
            throw fail("model.\(key): must be positive, found \(v)")
        }
        guard j.seqLen >= 1 else { throw fail("seq_len: must be ≥ 1, found \(j.seqLen)") }
        let qr = j.queryRows
        guard qr.start >= 0, qr.start <= qr.stop, qr.stop <= j.seqLen else {
            throw fail("query_rows {start: \(qr.start), stop: \(qr.stop)} is outside 0 … \(j.seqLen)")
        }
        var modality: [Modality] = []
        modality.reserveCapacity(j.tokenModality.count)
        for (p, c) in j.tokenModality.enumerated() {
            guard c >= 0, c <= 3, let mm = Modality(rawValue: UInt8(c)) else {
                throw fail("token_modality[\(p)]: \(c) is not a code 0–3")
            }
            modality.append(mm)
        }
        let images = try j.images.enumerated().map { try span($0.element, path: "images[\($0.offset)]", id: nil, file: file) }
        var extras: [String: String] = [:]
        for (key, v) in [("notes", j.notes), ("generated_text", j.generatedText), ("colsum_over", j.colsumOver)] {
            if let v { extras[key] = v }
        }
        if let r = j.recorder { extras["recorder"] = r.text }
        let shape = TraceShape(
            layers: m.numLayers, queryHeads: m.numHeads, kvHeads: m.numKVHeads, headDim: m.headDim,
            seqLen: j.seqLen, prefillLen: j.prefillLen, queryRows: qr.start ..< qr.stop,
            kvHeadOfQueryHead: m.kvHeadOfQueryHead)
        var info = TraceInfo(
            name: j.name ?? URL(fileURLWithPath: file).deletingLastPathComponent().lastPathComponent,
            modelName: m.name ?? "unknown", shape: shape, modality: modality, images: images,
            recordedLayers: [], attnScale: m.attnScale, causal: j.causal,
            syntheticImageTokens: j.syntheticImageTokens ?? images.contains { $0.isPseudo },
            extras: extras)
        try applyLayoutExtensions(j.layout, into: &info, file: file)
        try validate(info, file: file)
        return (info, j.layerFiles)
    }

    /// An image span (or tile) of `trace.json` or a sidecar, its grid checked for overflow.
    static func span(_ img: TraceJSON.Span, path: String, id: Int?, file: String) throws -> ImageSpan {
        func fail(_ m: String) -> TraceError { TraceError(file: file, m) }
        guard img.start < img.stop else { throw fail("\(path): span [\(img.start), \(img.stop)) is empty or reversed") }
        var grid: GridSize?
        if let g = img.grid {
            guard g.count == 2, g[0] > 0, g[1] > 0 else { throw fail("\(path).grid: must be [rows, cols] of positive integers") }
            _ = try Checked.multiply(g[0], g[1], field: "\(path).grid", file: file)
            grid = GridSize(rows: g[0], cols: g[1])
        }
        let tiles = try img.tiles.enumerated().map { try span($0.element, path: "\(path).tiles[\($0.offset)]", id: $0.offset, file: file) }
        return ImageSpan(
            id: id ?? img.imageId ?? 0, positions: img.start ..< img.stop, grid: grid, tiles: tiles,
            isPseudo: img.pseudo, source: img.source, levels: img.levels, label: img.label)
    }

    /// The metadata checks of docs/trace-format.md#validation that need no tensor data.
    public static func validate(_ info: TraceInfo, file: String) throws {
        func fail(_ m: String) -> TraceError { TraceError(file: file, m) }
        let s = info.shape
        guard s.prefillLen >= 1, s.prefillLen <= s.seqLen else {
            throw fail("prefill_len \(s.prefillLen) is outside 1 … \(s.seqLen) (seq_len)")
        }
        guard s.queryRows.lowerBound >= 0, s.queryRows.upperBound <= s.seqLen else {
            throw fail("query_rows \(s.queryRows.lowerBound) ..< \(s.queryRows.upperBound) is outside 0 … \(s.seqLen)")
        }
        guard s.kvHeadOfQueryHead.count == s.queryHeads else {
            throw fail("kv_head_of_query_head has \(s.kvHeadOfQueryHead.count) entries, expected num_heads = \(s.queryHeads)")
        }
        if let bad = s.kvHeadOfQueryHead.first(where: { $0 < 0 || $0 >= s.kvHeads }) {
            throw fail("kv_head_of_query_head holds \(bad), outside 0 ..< \(s.kvHeads) (num_kv_heads)")
        }
        guard s.kvHeads <= s.queryHeads else {
            throw fail("num_kv_heads \(s.kvHeads) is more than num_heads \(s.queryHeads)")
        }
        if let unused = (0 ..< s.kvHeads).first(where: { !s.kvHeadOfQueryHead.contains($0) }) {
            throw fail("KV head \(unused) is read by no query head in kv_head_of_query_head")
        }
        guard info.modality.count == s.seqLen else {
            throw fail("token_modality has \(info.modality.count) entries, expected seq_len = \(s.seqLen)")
        }
        let spans = info.images.sorted { $0.positions.lowerBound < $1.positions.lowerBound }
        for (n, img) in spans.enumerated() {
            let r = img.positions
            guard r.lowerBound >= 0, r.upperBound <= s.seqLen else {
                throw fail("image \(img.id) span [\(r.lowerBound), \(r.upperBound)) is outside 0 … \(s.seqLen)")
            }
            if n > 0, spans[n - 1].positions.upperBound > r.lowerBound {
                throw fail("image spans \(spans[n - 1].id) and \(img.id) overlap")
            }
            guard img.grid.checkedCount == r.count || !img.tiles.isEmpty else {
                throw fail(
                    "image \(img.id) grid \(img.grid) has \(img.grid.checkedCount.map(String.init) ?? "too many") patches, span has \(r.count) tokens"
                )
            }
            for t in img.tiles {
                guard t.positions.lowerBound >= r.lowerBound, t.positions.upperBound <= r.upperBound else {
                    throw fail("a tile of image \(img.id) lies outside its image")
                }
                guard t.grid.checkedCount == t.positions.count else {
                    throw fail("a tile of image \(img.id) has grid \(t.grid) for \(t.positions.count) tokens")
                }
            }
            for (a, b) in zip(img.tiles, img.tiles.dropFirst()) where a.positions.upperBound > b.positions.lowerBound {
                throw fail("tiles of image \(img.id) overlap or are out of order")
            }
            // an image with tiles may hold text between its tiles (tile tags); its tiles may not
            if let p = img.tokenRanges.joined().first(where: { info.modality[$0] == .text }) {
                throw fail("image \(img.id) span [\(r.lowerBound), \(r.upperBound)) covers text position \(p) (token_modality 0)")
            }
        }
    }

    /// The JSON object of `trace.json` for `info` (sorted keys when serialised: deterministic bytes).
    public static func object(for info: TraceInfo, layerFiles: [String]?, extra: [String: Any] = [:]) -> [String: Any] {
        let s = info.shape
        func span(_ i: ImageSpan, tile: Bool) -> [String: Any] {
            var o: [String: Any] = [
                "start": i.positions.lowerBound, "stop": i.positions.upperBound,
                "grid": [i.grid.rows, i.grid.cols],
            ]
            if !tile { o["image_id"] = i.id }
            if !i.tiles.isEmpty { o["tiles"] = i.tiles.map { span($0, tile: true) } }
            if i.isPseudo { o["pseudo"] = true }
            if let src = i.source { o["source"] = src }
            if let label = i.label { o["label"] = label }
            if let lv = i.levels { o["levels"] = lv }
            return o
        }
        var o: [String: Any] = [
            "format": "attn-trace", "version": 1, "name": info.name,
            "model": [
                "name": info.modelName, "num_layers": s.layers, "num_heads": s.queryHeads, "num_kv_heads": s.kvHeads,
                "head_dim": s.headDim, "kv_head_of_query_head": s.kvHeadOfQueryHead, "attn_scale": info.attnScale,
            ] as [String: Any],
            "causal": info.causal, "seq_len": s.seqLen, "prefill_len": s.prefillLen,
            "query_rows": ["start": s.queryRows.lowerBound, "stop": s.queryRows.upperBound],
            "token_modality": info.modality.map { Int($0.rawValue) },
            "images": info.images.map { span($0, tile: false) },
            "synthetic_image_tokens": info.syntheticImageTokens,
        ]
        if let layerFiles { o["layer_files"] = layerFiles }
        layoutExtensionObject(info).forEach { o[$0.key] = $0.value }
        for (k, v) in info.extras where k != "recorder" { o[k] = v }
        for (k, v) in extra { o[k] = v }
        return o
    }

    public static func encode(_ object: [String: Any]) throws -> Data {
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    }
}
