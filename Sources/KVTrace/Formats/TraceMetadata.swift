import Foundation

/// Reads and writes `trace.json` (docs/trace-format.md#metadata-tracejson). Unknown keys are ignored.
public enum TraceMetadata {
    /// Parses the JSON text of `trace.json`. `layerFiles` is returned for the folder variant.
    public static func parse(_ data: Data, file: String) throws -> (info: TraceInfo, layerFiles: [String]?) {
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: data) } catch {
            throw TraceError(file: file, "not valid JSON")
        }
        guard let j = any as? [String: Any] else { throw TraceError(file: file, "not a JSON object") }
        func fail(_ m: String) -> TraceError { TraceError(file: file, m) }
        func int(_ o: [String: Any], _ k: String, _ path: String) throws -> Int {
            guard let v = o[k] else { throw fail("missing key '\(path)'") }
            guard let i = SafeTensorsFile.intValue(v) else { throw fail("'\(path)' must be an integer") }
            return i
        }
        guard (j["format"] as? String) == "attn-trace" else {
            throw fail("'format' must be \"attn-trace\", found \(j["format"].map { "\($0)" } ?? "nothing")")
        }
        guard let version = j["version"].flatMap(SafeTensorsFile.intValue), version == 1 else {
            throw fail("'version' must be 1, found \(j["version"].map { "\($0)" } ?? "nothing")")
        }
        guard let model = j["model"] as? [String: Any] else { throw fail("missing object 'model'") }
        let layers = try int(model, "num_layers", "model.num_layers")
        let heads = try int(model, "num_heads", "model.num_heads")
        let kvHeads = try int(model, "num_kv_heads", "model.num_kv_heads")
        let headDim = try int(model, "head_dim", "model.head_dim")
        guard layers >= 1, heads >= 1, kvHeads >= 1, headDim >= 1 else {
            throw fail("model.num_layers, num_heads, num_kv_heads and head_dim must be positive")
        }
        guard let mapAny = model["kv_head_of_query_head"] as? [Any] else { throw fail("missing key 'model.kv_head_of_query_head'") }
        let map = try mapAny.map { v -> Int in
            guard let i = SafeTensorsFile.intValue(v) else { throw fail("'model.kv_head_of_query_head' must hold integers") }
            return i
        }
        guard let causal = j["causal"] as? Bool else { throw fail("missing boolean 'causal'") }
        let seqLen = try int(j, "seq_len", "seq_len")
        let prefill = try int(j, "prefill_len", "prefill_len")
        guard let qr = j["query_rows"] as? [String: Any] else { throw fail("missing object 'query_rows'") }
        let qStart = try int(qr, "start", "query_rows.start")
        let qStop = try int(qr, "stop", "query_rows.stop")
        guard seqLen >= 1 else { throw fail("seq_len must be ≥ 1, found \(seqLen)") }
        guard qStart >= 0, qStart <= qStop, qStop <= seqLen else {
            throw fail("query_rows {start: \(qStart), stop: \(qStop)} is outside 0 … \(seqLen)")
        }
        guard let modAny = j["token_modality"] as? [Any] else { throw fail("missing array 'token_modality'") }
        var modality: [Modality] = []
        modality.reserveCapacity(modAny.count)
        for (p, v) in modAny.enumerated() {
            guard let c = SafeTensorsFile.intValue(v), c >= 0, c <= 3, let m = Modality(rawValue: UInt8(c)) else {
                throw fail("token_modality[\(p)] = \(v) is not a code 0–3")
            }
            modality.append(m)
        }
        guard let imagesAny = j["images"] as? [Any] else { throw fail("missing array 'images'") }
        var images: [ImageSpan] = []
        for (n, imgAny) in imagesAny.enumerated() {
            guard let img = imgAny as? [String: Any] else { throw fail("images[\(n)] is not an object") }
            images.append(try parseSpan(img, path: "images[\(n)]", id: nil, file: file))
        }
        let name = (j["name"] as? String) ?? URL(fileURLWithPath: file).deletingLastPathComponent().lastPathComponent
        let modelName = (model["name"] as? String) ?? "unknown"
        var layerFiles: [String]?
        if let lf = j["layer_files"] as? [Any] {
            layerFiles = try lf.map { v in
                guard let s = v as? String else { throw fail("'layer_files' must hold file names") }
                return s
            }
        }
        let scale = (model["attn_scale"] as? NSNumber)?.doubleValue
        var extras: [String: String] = [:]
        for key in ["notes", "generated_text", "colsum_over"] { if let s = j[key] as? String { extras[key] = s } }
        if let r = j["recorder"], let d = try? JSONSerialization.data(withJSONObject: r, options: [.sortedKeys]) {
            extras["recorder"] = String(decoding: d, as: UTF8.self)
        }
        let shape = TraceShape(layers: layers, queryHeads: heads, kvHeads: kvHeads, headDim: headDim, seqLen: seqLen,
                               prefillLen: prefill, queryRows: qStart ..< qStop, kvHeadOfQueryHead: map)
        var info = TraceInfo(name: name, modelName: modelName, shape: shape, modality: modality, images: images,
                             recordedLayers: [], attnScale: scale, causal: causal,
                             syntheticImageTokens: (j["synthetic_image_tokens"] as? Bool) ?? images.contains { $0.isPseudo },
                             extras: extras)
        try parseLayoutExtensions(j, into: &info, file: file)
        try validate(info, file: file)
        return (info, layerFiles)
    }

    static func parseSpan(_ img: [String: Any], path: String, id: Int?, file: String) throws -> ImageSpan {
        func fail(_ m: String) -> TraceError { TraceError(file: file, m) }
        guard let start = img["start"].flatMap(SafeTensorsFile.intValue), let stop = img["stop"].flatMap(SafeTensorsFile.intValue) else {
            throw fail("\(path) needs integer 'start' and 'stop'")
        }
        guard start < stop else { throw fail("\(path) span [\(start), \(stop)) is empty or reversed") }
        var grid: GridSize?
        if let g = img["grid"] as? [Any] {
            guard g.count == 2, let r = SafeTensorsFile.intValue(g[0]), let c = SafeTensorsFile.intValue(g[1]), r > 0, c > 0 else {
                throw fail("\(path).grid must be [rows, cols] of positive integers")
            }
            grid = GridSize(rows: r, cols: c)
        }
        var tiles: [ImageSpan] = []
        if let ts = img["tiles"] as? [Any] {
            for (k, t) in ts.enumerated() {
                guard let to = t as? [String: Any] else { throw fail("\(path).tiles[\(k)] is not an object") }
                tiles.append(try parseSpan(to, path: "\(path).tiles[\(k)]", id: k, file: file))
            }
        }
        let imageId = id ?? img["image_id"].flatMap(SafeTensorsFile.intValue) ?? 0
        var levels: [[Double]]?
        if let lv = img["levels"] as? [[Any]] {
            levels = lv.map { row in row.map { ($0 as? NSNumber)?.doubleValue ?? 0 } }
        }
        return ImageSpan(id: imageId, positions: start ..< stop, grid: grid, tiles: tiles,
                         isPseudo: (img["pseudo"] as? Bool) ?? false, source: img["source"] as? String, levels: levels,
                         label: img["label"] as? String)
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
            guard img.grid.count == r.count || !img.tiles.isEmpty else {
                throw fail("image \(img.id) grid \(img.grid) has \(img.grid.count) patches, span has \(r.count) tokens")
            }
            for t in img.tiles {
                guard t.positions.lowerBound >= r.lowerBound, t.positions.upperBound <= r.upperBound else {
                    throw fail("a tile of image \(img.id) lies outside its image")
                }
                guard t.grid.count == t.positions.count else {
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
            var o: [String: Any] = ["start": i.positions.lowerBound, "stop": i.positions.upperBound,
                                    "grid": [i.grid.rows, i.grid.cols]]
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
