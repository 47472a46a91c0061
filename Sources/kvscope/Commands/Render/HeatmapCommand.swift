import ArgumentParser
import Foundation
import KVPlot
import KVTrace

/// `kvscope render heatmap`: the attention map of one layer.
struct HeatmapCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample("render heatmap Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --layer 3 --all-heads"),
        HelpExample("render heatmap Examples/traces/smollm2-layer3-bare.npz --prefill-len 161 --layer 3 --mean", note: "bare arrays"),
    ]

    static let configuration = CommandConfiguration(
        commandName: "heatmap",
        abstract: "Attention heatmap of one layer: one head, the mean over heads, or every head (--all-heads).",
        discussion: """
            Query rows (the recorded ones, at their absolute positions) run down, key positions across. \
            The causal upper triangle is drawn in the mask colour #F2F2F2. Modality bands run along both \
            axes (hatched for pseudo-images); ticks mark span boundaries. When a cell would be smaller than \
            a device pixel the map is pooled k×k (--pool), and the subtitle says so.

            --layer N picks the layer drawn (required when the trace records several layers). For bare \
            arrays of one layer (HQT) it is also the layer the arrays hold, so the title says layer N; \
            without it they are layer 0. (--grid RxC is the bare-array patch grid, not the small multiples.)
            """ + "\n\n" + HelpExample.section(examples)
    )

    enum Norm: String, ExpressibleByArgument, CaseIterable { case log, linear, power }

    @OptionGroup var trace: TraceOptions
    @Option(name: .customLong("head"), help: "Query head (default: the mean over heads).")
    var head: Int?
    @Flag(name: .customLong("mean"), help: "The mean over query heads (the default without --head).")
    var mean = false
    @Flag(name: .customLong("all-heads"), help: "Every head of the layer as small multiples sharing one colour scale.")
    var allHeads = false
    @Option(name: .customLong("norm"), help: "Colour scale: log (default range 1e-4…1), linear (0…max) or power (γ 0.5, 0…max).")
    var norm: Norm = .log
    @Option(
        name: .customLong("vmin"),
        help: ArgumentHelp(
            "Lower end of the log scale: a number, or auto (1st percentile of the positive entries, floored at 1e-6).", valueName: "v|auto")
    )
    var vmin: String?
    @Option(name: .customLong("cmap"), help: "Colour map.")
    var cmap: ColorMap = .viridis
    @Option(
        name: .customLong("pool"), help: "Down-sampling when cells are smaller than a pixel: max keeps peaks; mean averages causal entries."
    )
    var pool: HeatmapData.Pooling = .max
    @Option(
        name: .customLong("rows"), help: ArgumentHelp("Absolute query positions to show, a:b (within the recorded rows).", valueName: "a:b")
    )
    var rows: RangeArgument?
    @Option(name: .customLong("cols"), help: ArgumentHelp("Key positions to show, a:b.", valueName: "a:b"))
    var cols: RangeArgument?
    @OptionGroup var output: RenderOutputOptions

    func validate() throws {
        if head != nil && mean { throw ValidationError("use only one of --head and --mean") }
        var isDir: ObjCBool = false
        if let g = trace.grid, FileManager.default.fileExists(atPath: trace.path, isDirectory: &isDir), isDir.boolValue {
            throw ValidationError(
                "--grid \(g) is the patch grid of bare arrays, not of an attn-trace folder; every head as small multiples is --all-heads")
        }
        if allHeads && (head != nil || mean) { throw ValidationError("--all-heads draws every head: drop --head / --mean") }
        if let h = head, h < 0 { throw ValidationError("--head must be ≥ 0, got \(h)") }
        if let v = vmin, v != "auto" {
            guard let d = Double(v), d > 0, d < 1 else { throw ValidationError("--vmin: '\(v)' is not auto or a number in (0, 1)") }
            guard norm == .log else { throw ValidationError("--vmin applies to --norm log") }
            _ = d
        }
    }

    func run() throws {
        let (source, layerIndex) = try trace.openOneLayer()
        let info = source.info
        let H = info.shape.queryHeads, T = info.shape.seqLen
        if let h = head, h >= H { throw CLIError("--head \(h): the trace has \(H) query heads (0..<\(H))") }
        let tensors = try source.layer(layerIndex)
        guard let attn = tensors.attention else {
            throw CLIError("\(info.name) layer \(layerIndex): no attn rows recorded; the heatmap needs attn")
        }
        let qr = info.shape.queryRows
        let Q = qr.count
        let rowRange = try rows.map { try $0.resolve(flag: "--rows", limit: qr.upperBound) } ?? qr
        guard rowRange.lowerBound >= qr.lowerBound else {
            throw CLIError("--rows \(rows.map(\.description) ?? ""): the trace records rows \(qr.lowerBound)..<\(qr.upperBound)")
        }
        let colRange = try cols.map { try $0.resolve(flag: "--cols", limit: T) } ?? 0 ..< T
        let R = rowRange.count, C = colRange.count

        /// Head `h`'s crop, row-major.
        func crop(_ h: Int) -> [Float] {
            var out = [Float](repeating: 0, count: R * C)
            out.withUnsafeMutableBufferPointer { buf in
                for (r, i) in rowRange.enumerated() {
                    attn.copyFloats(from: (h * Q + i - qr.lowerBound) * T + colRange.lowerBound, count: C, into: buf.baseAddress! + r * C)
                }
            }
            return out
        }

        let bands = RenderSupport.bands(info).compactMap { b -> ModalityBand? in
            let lo = max(b.range.lowerBound, colRange.lowerBound), hi = min(b.range.upperBound, colRange.upperBound)
            guard lo < hi else { return nil }
            return ModalityBand(lo ..< hi, kind: b.kind, label: b.label, isPseudo: b.isPseudo)
        }
        var sub: [String] = []
        if let note = RenderSupport.pseudoNote(info) { sub.append(note) }
        let window = qr.lowerBound > 0 || qr.upperBound < T ? " (window trace: only the recorded rows)" : ""
        sub.append(
            "rows \(rowRange.lowerBound)..<\(rowRange.upperBound)\(window), keys \(colRange.lowerBound)..<\(colRange.upperBound); P = \(info.shape.prefillLen)"
        )

        let matrices: [Float]
        let headText: String
        if allHeads {
            matrices = (0 ..< H).flatMap { crop($0) }
            headText = "all \(H) heads"
        } else if let h = head {
            matrices = crop(h)
            headText = "head \(h)"
        } else {
            var m = [Float](repeating: 0, count: R * C)
            for h in 0 ..< H { for (k, v) in crop(h).enumerated() { m[k] += v } }
            for k in m.indices { m[k] /= Float(H) }
            matrices = m
            headText = "mean over \(H) heads"
            sub.append("mean over \(H) query heads")
        }
        let normalization: Normalization
        switch norm {
        case .log:
            if vmin == "auto" {
                normalization = .autoLog(matrices)
            } else {
                normalization = .log((vmin.flatMap(Double.init) ?? 1e-4) ... 1)
            }
        case .linear, .power:
            let top = Double(matrices.filter(\.isFinite).max() ?? 1)
            let hi = top > 0 ? top : 1
            normalization = norm == .linear ? .linear(0 ... hi) : .power(gamma: 0.5, 0 ... hi)
        }
        let scaleName: String
        switch norm {
        case .log: scaleName = "log"
        case .linear: scaleName = "linear"
        case .power: scaleName = "power γ 0.5"
        }
        let barLabel = "attention weight, \(scaleName)"
        let title = output.title("\(RenderSupport.traceTitle(info)): where does layer \(layerIndex) attend? (\(headText))")
        let figure: Figure
        let name: String
        if allHeads {
            let panels = (0 ..< H).map { h in
                HeatmapGridPanel(title: "L\(layerIndex) H\(h)", matrix: Array(matrices[h * R * C ..< (h + 1) * R * C]))
            }
            var g = HeatmapGridFigure(
                panels: panels, rows: R, cols: C,
                causal: info.causal, bands: bands.map { ModalityBand($0.range, kind: $0.kind, isPseudo: $0.isPseudo) },
                normalization: normalization, colorMap: cmap, title: title, subtitle: sub, colorBarLabel: barLabel,
                panelSize: R * 2 < C ? 200 : 110, pooling: pool, scale: output.scale)
            g.rowStart = rowRange.lowerBound
            g.colStart = colRange.lowerBound
            figure = g.build()
            name = "heatmap-\(info.name)-L\(layerIndex)-all-heads"
        } else {
            var f = HeatmapFigure(
                matrix: matrices, rows: R, cols: C, rowStart: rowRange.lowerBound, causal: info.causal, bands: bands,
                normalization: normalization, colorMap: cmap, title: title, subtitle: sub, colorBarLabel: barLabel,
                pooling: pool, scale: output.scale)
            f.data = HeatmapData(values: matrices, rows: R, cols: C, rowStart: rowRange.lowerBound, colStart: colRange.lowerBound)
            figure = f.build()
            name = "heatmap-\(info.name)-L\(layerIndex)-" + (head.map { "H\($0)" } ?? "mean")
        }
        try output.write(figure, defaultName: name)
    }
}

extension ColorMap: ExpressibleByArgument {}
extension HeatmapData.Pooling: ExpressibleByArgument {}
