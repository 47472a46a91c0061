import ArgumentParser
import Foundation
import KVTrace

/// `kvscope info`: what a trace holds, and whether it is sound.
struct InfoCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample("info Examples/traces/smollm2-pseudoimg2x64-gen16-w24"),
        HelpExample(
            "info Examples/traces/smollm2-layer3-bare.npz --prefill-len 161 --layer 3",
            note: "bare arrays: members named attention, keys, token_kind, … are found without flags"),
        HelpExample("info Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --json"),
    ]

    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Describe a trace: shape, GQA map, modality spans, tensors per layer, and sanity checks.",
        discussion: """
            Prints the model, layers, query heads, KV heads (with the GQA map), head dim, sequence \
            length, prefill length, recorded query rows, text/image runs with image ids and patch grids \
            (each tile of a tiled image with its own grid and label), position ids when they are not \
            0 ..< T (M-RoPE), sliding-window layers and bidirectional spans, \
            the tensors of each layer with dtypes and shapes, bytes on disk, and checks every layer: \
            NaN/Inf (an error), rows summing to 1, the causal mask, and stored versus recomputed \
            column sums (warnings). Exit status 2 when the trace is malformed or holds NaN/Inf.

            For bare arrays it also says which array played which role and why: named by a flag, by \
            the sidecar, or found by its conventional name (attention/attn, colsum/attn_colsum, \
            queries/q, keys/k, values/v, token_kind, modality/token_modality).
            """ + "\n\n" + HelpExample.section(examples)
    )

    @OptionGroup var trace: TraceOptions

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @Flag(name: .customLong("skip-checks"), help: "Skip the per-layer data checks (faster on large traces).")
    var skipChecks = false

    func run() throws {
        let source = try trace.open()
        let info = source.info
        var layerSummaries: [[String: Any]] = []
        var inspections = [LayerInspection?](repeating: nil, count: info.recordedLayers.count)
        var failures = [String?](repeating: nil, count: info.recordedLayers.count)
        for l in info.recordedLayers {
            let t = try source.layer(l)
            layerSummaries.append([
                "layer": l, "file": t.file,
                "tensors": t.named.map { ["name": $0.name, "dtype": $0.tensor.dtype.rawValue, "shape": $0.tensor.shape] as [String: Any] },
            ])
        }
        if !skipChecks {
            let layers = info.recordedLayers
            let results = try parallelMap(layers.count) { i -> (LayerInspection?, String?) in
                do { return (LayerInspection(try source.layer(layers[i]), info: info), nil) } catch { return (nil, "\(error)") }
            }
            for i in layers.indices { (inspections[i], failures[i]) = results[i] }
        }
        var errors: [String] = failures.compactMap { $0 }
        var warnings: [String] = source.warnings.map(\.description)
        var seenKinds = Set<String>()
        for case let ins? in inspections {
            let file = (layerSummaries.first { ($0["layer"] as? Int) == ins.layer }?["file"] as? String) ?? trace.path
            errors += ins.errors.map { "\(file), layer \(ins.layer): \($0)" }
            for w in ins.warnings {
                let kind = String(w.prefix(24))
                if seenKinds.insert(kind).inserted { warnings.append("layer \(ins.layer): \(w)") }
            }
        }
        if info.syntheticImageTokens {
            warnings.append(
                "image spans are pseudo-images (text tokens standing in for patches): results about image tokens are not evidence about real VLMs"
            )
        }
        let s = info.shape
        let runs = info.modalityRuns.map {
            ["modality": $0.modality.description, "start": $0.positions.lowerBound, "stop": $0.positions.upperBound] as [String: Any]
        }
        if json {
            var o: [String: Any] = [
                "name": info.name, "model": info.modelName, "layers": s.layers, "recorded_layers": info.recordedLayers,
                "query_heads": s.queryHeads, "kv_heads": s.kvHeads, "kv_head_of_query_head": s.kvHeadOfQueryHead,
                "head_dim": s.headDim, "seq_len": s.seqLen, "prefill_len": s.prefillLen,
                "query_rows": ["start": s.queryRows.lowerBound, "stop": s.queryRows.upperBound],
                "causal": info.causal, "attn_scale": info.attnScale, "synthetic_image_tokens": info.syntheticImageTokens,
                "modality_runs": runs,
                "images": info.images.map { img in
                    [
                        "image_id": img.id, "start": img.positions.lowerBound, "stop": img.positions.upperBound,
                        "grid": [img.grid.rows, img.grid.cols], "pseudo": img.isPseudo,
                        "tiles": img.tiles.map { t -> [String: Any] in
                            var o: [String: Any] = [
                                "start": t.positions.lowerBound, "stop": t.positions.upperBound,
                                "grid": [t.grid.rows, t.grid.cols],
                            ]
                            if let l = t.label { o["label"] = l }
                            return o
                        },
                    ] as [String: Any]
                },
                "position_ids": info.positionIDs.map { ["rows": $0.count, "max": $0.joined().max() ?? 0] as [String: Any] } ?? NSNull(),
                "sliding_windows": Dictionary(uniqueKeysWithValues: info.slidingWindows.map { (String($0.key), $0.value) }),
                "bidirectional_spans": info.bidirectionalSpans.map { [$0.lowerBound, $0.upperBound] },
                "layer_tensors": layerSummaries,
                "files": source.files.map { ["path": $0.path, "bytes": $0.bytes] as [String: Any] },
                "arrays": ((source as? BareTrace)?.members ?? []).map { ["role": $0.role, "name": $0.name, "origin": $0.origin.rawValue] },
                "bytes_on_disk": source.totalBytes, "content_hash": info.contentHash,
                "warnings": warnings, "errors": errors,
            ]
            if !skipChecks {
                o["checks"] = inspections.compactMap { $0 }.map { ins -> [String: Any] in
                    var c: [String: Any] = ["layer": ins.layer]
                    if let v = ins.maxRowSumError { c["max_row_sum_error"] = v }
                    if let v = ins.maxAboveDiagonal { c["max_above_diagonal"] = v }
                    if let v = ins.maxColsumError { c["max_colsum_error"] = v }
                    return c
                }
            }
            let data = try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
        } else {
            printText(
                info, source: source, layers: layerSummaries, inspections: inspections.compactMap { $0 }, warnings: warnings, errors: errors
            )
        }
        if !errors.isEmpty {
            if json { for e in errors { printError("kvscope: error: \(e.escapedForMessage)") } }
            throw AlreadyReported()
        }
    }

    func printText(
        _ info: TraceInfo, source: any TraceSource, layers: [[String: Any]], inspections: [LayerInspection],
        warnings: [String], errors: [String]
    ) {
        let s = info.shape
        func row(_ k: String, _ v: String) { print(k.padding(toLength: 16, withPad: " ", startingAt: 0) + v) }
        row("trace", "\(info.name)  (\(trace.path))")
        row("model", info.modelName)
        row("layers", "\(s.layers)" + (info.recordedLayers.count == s.layers ? "" : "  (recorded: \(info.recordedLayers.rangesText))"))
        row("query heads", "\(s.queryHeads)")
        let groups = (0 ..< s.kvHeads).map { g in "kv\(g)←q" + s.queryHeads(ofKVHead: g).rangesText }
        row("KV heads", "\(s.kvHeads)  (GQA: \(groups.joined(separator: " ")))")
        row("head dim", s.headDim > 0 ? "\(s.headDim)" : "unknown (no q or k)")
        row("seq len T", "\(s.seqLen)")
        row("prefill len P", "\(s.prefillLen)  (\(s.seqLen - s.prefillLen) generated)")
        row(
            "query rows",
            "\(s.queryRows.lowerBound) ..< \(s.queryRows.upperBound)  (\(s.queryRows.count) rows"
                + (s.queryRows.upperBound > s.prefillLen
                    ? ", \(s.queryRows.upperBound - max(s.prefillLen, s.queryRows.lowerBound)) future" : "") + ")")
        row("causal", info.causal ? "yes" : "no")
        row("attn scale", String(format: "%.6g", info.attnScale))
        if let p = info.positionIDs {
            row(
                "position ids",
                p.count == 3
                    ? "M-RoPE, 3 × \(s.seqLen) (temporal, height, width), largest \(p.joined().max() ?? 0)"
                    : "\(p.count) × \(s.seqLen), not 0 ..< T, largest \(p.joined().max() ?? 0)")
        }
        if !info.slidingWindows.isEmpty {
            let byWindow = Dictionary(grouping: info.slidingWindows.keys.sorted()) { info.slidingWindows[$0]! }
            row(
                "sliding window",
                byWindow.keys.sorted().map { w in
                    "layers \(byWindow[w]!.rangesText): window \(w) (cache holds \(min(w, s.seqLen)) keys)"
                }.joined(separator: "; ")
                    + "; other layers full")
        }
        if !info.bidirectionalSpans.isEmpty {
            row(
                "bidirectional",
                info.bidirectionalSpans.map { "[\($0.lowerBound), \($0.upperBound))" }.joined(separator: " ")
                    + "  (tokens also read the rest of their span)")
        }
        print("spans")
        for r in info.modalityRuns {
            var line =
                "  \(r.modality.description.padding(toLength: 6, withPad: " ", startingAt: 0)) \(r.positions.lowerBound) ..< \(r.positions.upperBound)  (\(r.positions.count) tokens)"
            if r.modality != .text {
                let imgs = info.images.filter { r.positions.overlaps($0.positions) }
                line +=
                    imgs.isEmpty
                    ? ""
                    : "  "
                        + imgs.map { img in
                            let head = "image \(img.id)\(img.isPseudo ? " pseudo" : "")"
                            if img.tiles.isEmpty {
                                return "\(head) [\(img.positions.lowerBound), \(img.positions.upperBound)) grid \(img.grid)"
                            }
                            let tiles = img.tiles.enumerated().filter { r.positions.overlaps($0.element.positions) }.map { k, t in
                                "tile \(t.label.map { "'\($0)'" } ?? String(k)) of \(img.tiles.count) [\(t.positions.lowerBound), \(t.positions.upperBound)) grid \(t.grid)"
                            }
                            return "\(head) " + tiles.joined(separator: ", ")
                        }.joined(separator: "; ")
            }
            print(line)
        }
        print("tensors")
        var groupsByDesc: [(String, [Int])] = []
        for l in layers {
            let desc = (l["tensors"] as! [[String: Any]]).map { t in
                "\(t["name"]!) \(t["dtype"]!) \((t["shape"] as! [Int]).shapeText)"
            }.joined(separator: ", ")
            if let i = groupsByDesc.firstIndex(where: { $0.0 == desc }) {
                groupsByDesc[i].1.append(l["layer"] as! Int)
            } else {
                groupsByDesc.append((desc, [l["layer"] as! Int]))
            }
        }
        for (desc, ls) in groupsByDesc { print("  layers \(ls.rangesText): \(desc)") }
        if let bare = source as? BareTrace, !bare.members.isEmpty {
            print("arrays")
            for m in bare.members {
                let how =
                    m.origin == .conventionalName
                    ? "found by name; \(m.flag) names another" : m.origin == .flag ? m.flag : m.origin.rawValue
                print("  \(m.role.padding(toLength: 14, withPad: " ", startingAt: 0)) ← \(m.name)  (\(how))")
            }
        }
        row(
            "bytes on disk",
            "\(source.totalBytes) (\(String(format: "%.1f", Double(source.totalBytes) / 1_048_576)) MiB in \(source.files.count) files)")
        if !inspections.isEmpty {
            let rowErr = inspections.compactMap(\.maxRowSumError).max()
            let above = inspections.compactMap(\.maxAboveDiagonal).max()
            let col = inspections.compactMap(\.maxColsumError).max()
            var parts: [String] = []
            if let rowErr { parts.append(String(format: "max |row sum − 1| %.2g", rowErr)) }
            if let above { parts.append(String(format: "max above diagonal %.2g", above)) }
            if let col { parts.append(String(format: "max colsum error %.2g", col)) }
            row("checks", parts.isEmpty ? "no attention rows to check" : parts.joined(separator: ", "))
        }
        for w in warnings { print("warning: \(w)") }
        for e in errors { printError("kvscope: error: \(e.escapedForMessage)") }
    }
}
