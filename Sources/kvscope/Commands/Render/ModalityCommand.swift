import ArgumentParser
import Foundation
import KVPlot
import KVPolicies
import KVTrace

/// `kvscope render modality`: text versus image attention per layer, and what each policy keeps by
/// modality (the LOOK-M observation).
struct ModalityCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample("render modality Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policies h2o,lookm --budget 0.2")
    ]

    static let configuration = CommandConfiguration(
        commandName: "modality",
        abstract: "Per layer, mean attention received per text token vs per image token; kept-cache share by modality per policy.",
        discussion: """
            Left: for each layer, mean over query heads and over the tokens j of a modality of \
            colsum[h, j] / (P − j), the prefill attention a token receives per query row that can see it \
            (dividing by P − j removes the bias towards early positions). Nothing is excluded: attention \
            sinks count as text. Log y.

            Right: with --policies, the share of the kept cache (all layers and KV heads) that is text or \
            image, next to the prompt's own composition.
            """ + "\n\n" + HelpExample.section(examples)
    )

    @OptionGroup var trace: TraceOptions
    @OptionGroup var policy: RenderPolicyOptions
    @OptionGroup var layers: LayerOptions
    @OptionGroup var output: RenderOutputOptions

    /// Which prefill positions are image-like (an image span, or a non-text modality).
    static func imageMask(_ info: TraceInfo) -> [Bool] {
        let P = info.shape.prefillLen
        let imageOf = info.imageIdOfPosition
        return (0 ..< P).map { j in
            (j < imageOf.count && imageOf[j] != nil) || (j < info.modality.count && info.modality[j] != .text)
        }
    }

    /// Mean over heads and tokens of each modality of `meanReceived` (`colsum[h, j] / (P − j)`):
    /// (text, image).
    static func meanReceived(_ received: ScoreMatrix, isImage: [Bool]) -> (text: Double, image: Double) {
        let P = received.count
        var t = 0.0, i = 0.0, nt = 0, ni = 0
        for h in 0 ..< received.rows {
            for j in 0 ..< P {
                let v = received[h, j]
                if isImage[j] { i += v; ni += 1 } else { t += v; nt += 1 }
            }
        }
        return (nt > 0 ? t / Double(nt) : .nan, ni > 0 ? i / Double(ni) : .nan)
    }

    /// Kept-cache share (text, image) over all layers and KV heads.
    static func keptShare(_ run: PolicyRun, isImage: [Bool]) -> [Double] {
        var t = 0, i = 0
        for d in run.decisions { for h in d.heads { for j in h.kept where j < isImage.count { if isImage[j] { i += 1 } else { t += 1 } } } }
        let n = Double(max(t + i, 1))
        return [Double(t) / n, Double(i) / n]
    }

    func run() throws {
        let source = try trace.open()
        let info = source.info
        let ids = try policy.ids(required: false)
        let chosen = try layers.chosen(info)
        let isImage = Self.imageMask(info)
        guard isImage.contains(true) else {
            throw CLIError("\(trace.path): the trace has no image tokens in the prefill; nothing to compare")
        }
        var text: [Double] = [], image: [Double] = []
        let bar = Progress(total: chosen.count, label: "colsum")
        for l in chosen {
            let ctx = try LayerContext(trace: source, layer: l, budget: policy.spec, options: policy.options)
            let m = Self.meanReceived(try ctx.meanReceived(), isImage: isImage)
            text.append(m.text)
            image.append(m.image)
            bar.step()
        }
        bar.finish()
        let runs = try RenderSupport.decide(ids, source: source, layers: chosen, policy: policy)
        let figure = Self.figure(
            info: info, layers: chosen, text: text, image: image, runs: runs, budget: policy.spec,
            fidelity: policy.fidelity, title: output.title, notes: policy.paramNote.map { [$0] } ?? [])
        try output.write(figure, defaultName: "modality-\(info.name)" + (ids.isEmpty ? "" : "-\(policy.spec.fileTag)"))
    }

    static func figure(
        info: TraceInfo, layers: [Int], text: [Double], image: [Double], runs: [PolicyRun], budget: BudgetSpec,
        fidelity: Fidelity, title: (String) -> String, notes: [String] = []
    ) -> Figure {
        let isImage = imageMask(info)
        let P = Double(isImage.count)
        let nImage = Double(isImage.filter { $0 }.count)
        var sub = [
            "left: mean over heads and tokens j of colsum_j / (P − j) = prefill attention received per query that can see j; sinks included, log y"
        ]
        if runs.isEmpty {
            sub.append("right: composition of the prompt [0, P); pass --policies to add what each policy keeps")
        } else {
            sub.append(
                "right: share of the kept cache (all layers, KV heads) by modality at budget \(budget.figureText), fidelity \(fidelity.rawValue); "
                    + runs.map { "\($0.id) C_act \(RenderSupport.fmt($0.meanActual))" }.joined(separator: ", "))
        }
        sub += notes
        if let note = RenderSupport.pseudoNote(info) { sub.append(note) }
        let fig = ModalityFigure(
            layers: layers, textMean: text, imageMean: image, policies: runs.map(\.id),
            shares: runs.map { keptShare($0, isImage: isImage) }, promptShare: [(P - nImage) / P, nImage / P],
            title: title("\(RenderSupport.traceTitle(info)): do text or image tokens get the attention, and the cache?"), subtitle: sub,
            size: Size(max(640, 460 + Double(runs.count + 1) * 40), 330))
        return fig.build()
    }
}
