import ArgumentParser
import Foundation
import KVPlot
import KVPolicies
import KVTrace

/// `kvscope render patches`: each image's patch grid coloured by how often its patches are kept,
/// or (`--show fate`) by where each patch's K/V went.
struct PatchesCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample("render patches Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policies h2o,lookm --budget 0.2"),
        HelpExample("render patches Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policies h2o,lookm --show fate -o Output/fate.png"),
    ]

    static let configuration = CommandConfiguration(
        commandName: "patches",
        abstract: "Per-image patch grids, one row per policy: how often each patch is kept, or where its K/V went (--show fate).",
        discussion: """
            --show kept (default): each cell is the fraction of (layer, KV head) pairs that keep the patch \
            (cividis, 0–1). --show fate: each cell takes the colour of the patch's most frequent fate over \
            those pairs — kept, merged into a kept text token, merged into a kept image token, or dropped — and \
            the share of each fate over the image is printed under its panel. Merging policies (lookm, \
            *-merge) show their merges only in the fate view: a merged patch is not kept.

            Patches are laid out row-major as the trace's images[].grid says, non-square grids included; \
            a tiled image (LLaVA-NeXT's base and high-res tiles, Idefics3's tiles and global tile, video \
            frames) is drawn tile by tile, each on its own grid, titled with the tile's label. A pseudo-image \
            (text tokens standing in for an image) is titled so; when the trace carries its grey levels, the \
            picture is drawn beside the first row (kept view).
            """ + "\n\n" + HelpExample.section(examples)
    )

    @OptionGroup var trace: TraceOptions
    @OptionGroup var policy: RenderPolicyOptions
    @OptionGroup var layers: LayerOptions
    @Option(
        name: .customLong("show"),
        help: "kept: the kept fraction per patch; fate: where each patch's K/V went (kept, merged into text, merged into image, dropped).")
    var show: View = .kept
    @OptionGroup var output: RenderOutputOptions

    enum View: String, ExpressibleByArgument, CaseIterable { case kept, fate }

    func validate() throws {
        _ = try policy.ids(required: true)
    }

    /// The grids drawn: each image, or each of its tiles.
    static func grids(_ info: TraceInfo) -> [(span: ImageSpan, title: String)] {
        var out: [(ImageSpan, String)] = []
        for img in info.images {
            let pseudo = img.isPseudo || info.syntheticImageTokens
            let name = pseudo ? "pseudo-image \(img.id) (text tokens)" : "image \(img.id)"
            if img.tiles.isEmpty {
                out.append((img, "\(name), \(img.grid)"))
            } else {
                for (t, tile) in img.tiles.enumerated() {
                    out.append((tile, "\(name) \(tile.label ?? "tile \(t)"), \(tile.grid)"))
                }
            }
        }
        return out
    }

    /// Grey levels normalised to 0…1 with one scale for every image of the trace (0…1 as is;
    /// digits 0–9, as the pseudo-image traces write them, over 9; else over the largest level).
    static func levels(_ img: ImageSpan, info: TraceInfo) -> [Double]? {
        guard let lv = img.levels else { return nil }
        let flat = lv.flatMap { $0 }
        guard flat.count == img.grid.count else { return nil }
        let every = info.images.flatMap { ($0.levels ?? []).flatMap { $0 } }
        let hi = every.max() ?? 1, lo = min(every.min() ?? 0, 0)
        let top = hi <= 1 ? 1.0 : (hi <= 9 && every.allSatisfy { $0 == $0.rounded() } ? 9.0 : hi)
        return flat.map { top > lo ? ($0 - lo) / (top - lo) : 0 }
    }

    func run() throws {
        let source = try trace.open()
        let info = source.info
        let grids = Self.grids(info)
        guard !grids.isEmpty else { throw CLIError("\(trace.path): the trace has no image spans to draw") }
        let ids = try policy.ids(required: true)
        let chosen = try layers.chosen(info)
        let runs = try RenderSupport.decide(ids, source: source, layers: chosen, policy: policy)
        let notes = policy.paramNote.map { [$0] } ?? []
        switch show {
        case .kept:
            let figure = Self.figure(
                runs: runs, info: info, layers: chosen, budget: policy.spec, fidelity: policy.fidelity, title: output.title, notes: notes)
            try output.write(figure, defaultName: "patches-\(info.name)-\(policy.spec.fileTag)")
        case .fate:
            let figure = Self.fateFigure(
                runs: runs, info: info, layers: chosen, budget: policy.spec, fidelity: policy.fidelity, title: output.title, notes: notes)
            try output.write(figure, defaultName: "patch-fate-\(info.name)-\(policy.spec.fileTag)")
        }
    }

    /// One subtitle line per policy: "lookm: C = 32, C_act = 45" (a single line of every policy
    /// overflows the page with a few policies and long ids).
    static func budgetLines(_ runs: [PolicyRun], fidelity: Fidelity) -> [String] {
        runs.map { "\($0.id): C = \($0.nominal), C_act = \(RenderSupport.fmt($0.meanActual)) (fidelity \(fidelity.rawValue))" }
    }

    /// Per image and policy, how often each patch met each fate over the (layer, KV head) pairs.
    /// A merge's target is the position its kept slot holds; the target is an image token when
    /// the position lies in an image span (pseudo-images included), else a text token.
    static func fates(runs: [PolicyRun], info: TraceInfo) -> [[PatchFateGrid]] {
        let grids = grids(info)
        let imageOf = info.imageIdOfPosition
        func isImage(_ j: Int) -> Bool {
            (j < imageOf.count && imageOf[j] != nil) || (j < info.modality.count && info.modality[j] != .text)
        }
        let T = info.shape.seqLen
        return runs.map { run in
            // fate[j][f]: pairs in which position j met fate f.
            var fate = [[Int]](repeating: [0, 0, 0, 0], count: T)
            for d in run.decisions {
                for h in d.heads {
                    var done = [Bool](repeating: false, count: T)
                    for j in h.kept where j < T { fate[j][PatchFate.kept.rawValue] += 1; done[j] = true }
                    for m in h.merges where m.source < T && m.slot < h.kept.count && !done[m.source] {
                        fate[m.source][(isImage(h.kept[m.slot]) ? PatchFate.mergedIntoImage : .mergedIntoText).rawValue] += 1
                        done[m.source] = true
                    }
                    for j in h.evicted where j < T && !done[j] { fate[j][PatchFate.dropped.rawValue] += 1 }
                }
            }
            return grids.map { g in
                let n = g.span.grid.count
                let counts = (0 ..< n).map { k -> [Int] in
                    let j = g.span.positions.lowerBound + k
                    return j < g.span.positions.upperBound && j < T ? fate[j] : [0, 0, 0, 0]
                }
                return PatchFateGrid(rows: g.span.grid.rows, cols: g.span.grid.cols, counts: counts)
            }
        }
    }

    static func fateFigure(
        runs: [PolicyRun], info: TraceInfo, layers: [Int], budget: BudgetSpec, fidelity: Fidelity,
        title: (String) -> String, notes: [String] = []
    ) -> Figure {
        let grids = grids(info)
        var sub = [
            "cell: the patch's most frequent fate over (layer, KV head) pairs; layers \(RenderSupport.compactList(layers)), \(info.shape.kvHeads) KV heads",
            "under each panel: the share of each fate over the image's patches and pairs",
        ]
        sub += budgetLines(runs, fidelity: fidelity)
        sub += notes
        if let note = RenderSupport.pseudoNote(info) { sub.append(note) }
        let maxSide = grids.map { max($0.span.grid.rows, $0.span.grid.cols) }.max() ?? 8
        var fig = PatchFateFigure(
            policies: runs.map(\.id), imageTitles: grids.map(\.title), grids: fates(runs: runs, info: info),
            title: title("\(RenderSupport.traceTitle(info)): where does each image's K/V go at budget \(budget.figureText)?"),
            subtitle: sub, cellSize: maxSide >= 16 ? 140 : 110)
        fig.styles = runs.map(\.style)
        return fig.build()
    }

    static func figure(
        runs: [PolicyRun], info: TraceInfo, layers: [Int], budget: BudgetSpec, fidelity: Fidelity,
        title: (String) -> String, notes: [String] = []
    ) -> Figure {
        let grids = grids(info)
        let kept: [[[Double]]] = runs.map { run in
            // count[j]: (layer, KV head) pairs that keep position j.
            var count = [Int](repeating: 0, count: info.shape.seqLen)
            var pairs = 0
            for d in run.decisions {
                for h in d.heads {
                    pairs += 1
                    for j in h.kept where j < count.count { count[j] += 1 }
                }
            }
            return grids.map { g in
                (0 ..< g.span.grid.count).map { k in
                    let j = g.span.positions.lowerBound + k
                    return j < g.span.positions.upperBound && j < count.count ? Double(count[j]) / Double(max(pairs, 1)) : .nan
                }
            }
        }
        let images = grids.map { g in
            PatchImage(title: g.title, rows: g.span.grid.rows, cols: g.span.grid.cols, levels: levels(g.span, info: info))
        }
        var sub = [
            "cell: fraction of (layer, KV head) pairs keeping the patch; layers \(RenderSupport.compactList(layers)), \(info.shape.kvHeads) KV heads"
        ]
        sub += budgetLines(runs, fidelity: fidelity)
        sub += notes
        if let note = RenderSupport.pseudoNote(info) { sub.append(note) }
        let maxSide = grids.map { max($0.span.grid.rows, $0.span.grid.cols) }.max() ?? 8
        let cell = maxSide >= 16 ? 140.0 : 110.0
        var fig = PatchGridFigure(
            policies: runs.map(\.id), images: images, kept: kept,
            title: title("\(RenderSupport.traceTitle(info)): which patches stay cached at budget \(budget.figureText)?"), subtitle: sub,
            cellSize: cell)
        fig.styles = runs.map(\.style)
        return fig.build()
    }
}
