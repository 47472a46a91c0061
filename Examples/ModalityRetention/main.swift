// ModalityRetention: do text tokens get more attention than image tokens, layer by layer, and
// what share of each policy's cache is text? (The observation behind LOOK-M's text prior.)
//
//     swift run ModalityRetention [output-folder] [trace]

import Foundation
import KVCairo
import KVPlot
import KVPolicies
import KVTrace

enum ModalityRetentionExample {
    static let policies = ["h2o", "snapkv", "lookm"]

    static func run(_ args: [String]) throws {
        let outDir = URL(fileURLWithPath: args.count > 1 ? args[1] : "Output/examples")
        let tracePath = args.count > 2 ? args[2] : "Examples/traces/smollm2-pseudoimg2x64-gen16-w24"
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
        let trace = try TraceLoader.open(tracePath)
        let info = trace.info
        let P = info.shape.prefillLen

        // Which prompt positions belong to an image.
        let imageOf = info.imageIdOfPosition
        let isImage = (0 ..< P).map { imageOf[$0] != nil || info.modality[$0] != .text }

        var textMean: [Double] = [], imageMean: [Double] = []
        var kept = [[Int]](repeating: [0, 0], count: policies.count)  // [policy][text, image] slots
        let made = try policies.map { try PolicyRegistry.make($0) }
        for layer in info.recordedLayers {
            let context = try LayerContext(trace: trace, layer: layer, budget: .fraction(0.2, recentShare: 0.5))
            // Attention a token receives from the prefill: the column sum over rows 0..<P,
            // divided by the P − j rows that can see it, so late tokens are not penalised.
            let received = try context.meanReceived()
            var sum = [0.0, 0.0], count = [0, 0]
            for h in 0 ..< received.rows {
                for j in 0 ..< P {
                    let m = isImage[j] ? 1 : 0
                    sum[m] += received[h, j]
                    count[m] += 1
                }
            }
            textMean.append(sum[0] / Double(max(count[0], 1)))
            imageMean.append(sum[1] / Double(max(count[1], 1)))
            // What each policy keeps at 20 %, by modality, over all KV heads.
            for (p, policy) in made.enumerated() {
                for head in try policy.decide(context).heads {
                    for j in head.kept where j < P { kept[p][isImage[j] ? 1 : 0] += 1 }
                }
            }
            print(String(format: "layer %2d  text %.4f  image %.4f  ratio %.1f×", layer, textMean.last!, imageMean.last!,
                         textMean.last! / max(imageMean.last!, 1e-12)))
        }
        let shares = kept.map { k in k.map { Double($0) / Double(max(k[0] + k[1], 1)) } }
        for (id, s) in zip(policies, shares) { print(id, "keeps", String(format: "%.0f%%", s[0] * 100), "text") }
        let nImage = Double(isImage.filter { $0 }.count)

        let figure = ModalityFigure(
            layers: info.recordedLayers, textMean: textMean, imageMean: imageMean, policies: policies, shares: shares,
            promptShare: [1 - nImage / Double(P), nImage / Double(P)],
            title: info.name + (info.syntheticImageTokens ? " (pseudo-images)" : "") + ": text vs image tokens",
            subtitle: ["left: mean over heads and tokens j of colsum_j / (P − j), sinks included; right: kept cache at budget 0.2"])
        let url = outDir.appendingPathComponent("modality-retention.png")
        try render(figure.build(), to: url, format: .png(scale: 2))
        print("wrote \(url.path)")
    }
}

do {
    try ModalityRetentionExample.run(CommandLine.arguments)
} catch {
    FileHandle.standardError.write(Data("ModalityRetention: \(error)\n".utf8))
    exit(1)
}
