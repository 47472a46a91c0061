import Foundation
import Testing
@testable import KVTrace

/// The generator's promised structure, checked by measurement on generated traces.
@Suite("synthetic traces")
struct SyntheticTests {
    static func generate(_ c: SyntheticConfig) throws -> AttnTrace {
        let dir = Paths.tempDir("synth")
        try SyntheticTraceGenerator.write(c, to: dir)
        return try AttnTrace(dir)
    }

    static var eightLayers: SyntheticConfig {
        var c = SyntheticConfig.tiny
        c.layers = 8
        c.seed = 11
        return c
    }

    @Test func rowsAreCausalSoftmaxOfStoredQK() throws {
        let t = try Self.generate(.tiny)
        let s = t.info.shape
        for l in t.info.recordedLayers {
            let layer = try t.layer(l)
            let ins = LayerInspection(layer, info: t.info)
            #expect(ins.errors.isEmpty && ins.warnings.isEmpty, "\(ins.warnings)")
            #expect(ins.maxAboveDiagonal == 0 && ins.maxRowSumError! < 1e-2)
            // Recompute a few rows from the stored (rounded) q and k.
            let q = layer.queries!.doubles(), k = layer.keys!.doubles(), a = layer.attention!.doubles()
            let T = s.seqLen, D = s.headDim
            for (h, i) in [(0, 5), (3, 40), (1, T - 1)] {
                let g = s.kvHeadOfQueryHead[h]
                let logits = (0 ... i).map { j in
                    (0 ..< D).reduce(0.0) { $0 + q[(h * T + i) * D + $1] * k[(g * T + j) * D + $1] } * t.info.attnScale
                }
                let m = logits.max()!
                let e = logits.map { exp($0 - m) }
                let z = e.reduce(0, +)
                for j in 0 ... i { #expect(abs(e[j] / z - a[(h * T + i) * T + j]) < 2e-3) }
            }
        }
    }

    /// Mean attention a token receives per prefill row that can see it: `colsum_j / (P − j)`.
    static func perRowAttention(_ layer: LayerTensors, _ info: TraceInfo) -> [Double] {
        let P = info.shape.prefillLen, T = info.shape.seqLen, H = info.shape.queryHeads
        let c = layer.colsum!.doubles()
        return (0 ..< P).map { j in (0 ..< H).reduce(0.0) { $0 + c[$1 * T + j] } / Double(H) / Double(P - j) }
    }

    @Test func textDrawsMoreAttentionThanImagesInPrefill() throws {
        let t = try Self.generate(Self.eightLayers)
        for l in t.info.recordedLayers {
            let per = Self.perRowAttention(try t.layer(l), t.info)
            // Sinks (positions 0–3) excluded so the comparison is about modality, not position.
            let text = (4 ..< per.count).filter { t.info.modality[$0] == .text }.map { per[$0] }
            let image = (4 ..< per.count).filter { t.info.modality[$0] == .image }.map { per[$0] }
            let ratio = (text.reduce(0, +) / Double(text.count)) / (image.reduce(0, +) / Double(image.count))
            #expect(ratio > 1.2, "layer \(l): text/image per-token attention \(ratio)")
        }
    }

    @Test func sinksAndDepth() throws {
        let t = try Self.generate(Self.eightLayers)
        let s = t.info.shape
        var entropies: [Double] = [], sinks: [Double] = []
        for l in t.info.recordedLayers {
            let a = try t.layer(l).attention!.doubles()
            let T = s.seqLen, i = s.prefillLen - 1
            let row = (0 ..< T).map { j in (0 ..< s.queryHeads).reduce(0.0) { $0 + a[($1 * T + i) * T + j] } / Double(s.queryHeads) }
            sinks.append(row[0])
            entropies.append(-row.filter { $0 > 0 }.reduce(0.0) { $0 + $1 * log($1) })
            // The first token draws far more than a uniform share.
            #expect(row[0] > 5.0 / Double(i + 1), "layer \(l): sink share \(row[0])")
        }
        #expect(sinks.last! > sinks.first!)
        #expect(entropies.last! < entropies.first! - 1, "later layers sparser: \(entropies)")
    }

    @Test func attentionInsideAnImageIsSpatiallyLocal() throws {
        let t = try Self.generate(Self.eightLayers)
        let s = t.info.shape, T = s.seqLen
        let img = t.info.images[1], grid = img.grid
        var near = 0.0, far = 0.0, nNear = 0, nFar = 0
        for l in t.info.recordedLayers {
            let a = try t.layer(l).attention!.doubles()
            for h in 0 ..< s.queryHeads {
                for (qi, i) in img.positions.enumerated() where qi >= grid.cols {
                    for (kj, j) in img.positions.prefix(qi).enumerated() {
                        let dist = abs(qi / grid.cols - kj / grid.cols) + abs(qi % grid.cols - kj % grid.cols)
                        let w = a[(h * T + i) * T + j]
                        if dist <= 1 { near += w; nNear += 1 } else if dist >= 3 { far += w; nFar += 1 }
                    }
                }
            }
        }
        #expect(near / Double(nNear) > 1.5 * far / Double(nFar), "near \(near / Double(nNear)) far \(far / Double(nFar))")
    }

    @Test func salientPatchesStandOut() throws {
        let t = try Self.generate(Self.eightLayers)
        let per = Self.perRowAttention(try t.layer(7), t.info)
        for img in t.info.images {
            let vals = img.positions.map { per[$0] }.sorted()
            let median = vals[vals.count / 2]
            #expect(vals.last! > 2 * median, "image \(img.id): max \(vals.last!) median \(median)")
        }
    }

    @Test func sameSeedSameBytesOtherSeedOtherBytes() throws {
        var c = SyntheticConfig.tiny
        c.layers = 2
        let a = Paths.tempDir("synth"), b = Paths.tempDir("synth"), d = Paths.tempDir("synth")
        try SyntheticTraceGenerator.write(c, to: a)
        try SyntheticTraceGenerator.write(c, to: b)
        c.seed = 99
        try SyntheticTraceGenerator.write(c, to: d)
        for f in ["trace.json", "layer_000.safetensors", "layer_001.safetensors"] {
            #expect(try Data(contentsOf: a.appendingPathComponent(f)) == Data(contentsOf: b.appendingPathComponent(f)))
        }
        #expect(
            try Data(contentsOf: a.appendingPathComponent("layer_001.safetensors"))
                != Data(contentsOf: d.appendingPathComponent("layer_001.safetensors")))
    }

    @Test func windowRowsWithGQA() throws {
        var c = SyntheticConfig.tiny
        c.heads = 6; c.kvHeads = 2; c.windowRows = 5; c.generated = 3; c.layers = 1
        let t = try Self.generate(c)
        let s = t.info.shape
        #expect(s.queryRows == (s.prefillLen - 5) ..< s.seqLen)
        #expect(s.kvHeadOfQueryHead == [0, 0, 0, 1, 1, 1])
        let l = try t.layer(0)
        #expect(l.attention!.shape == [6, 8, s.seqLen] && l.queries!.shape == [6, 8, 32] && l.keys!.shape == [2, s.seqLen, 32])
        // Column sums still cover every prefill row: they sum to P per head.
        let c0 = l.colsum!.doubles()
        #expect(abs(c0[0 ..< s.seqLen].reduce(0, +) - Double(s.prefillLen)) < 1e-2)
        #expect(c0[s.prefillLen ..< s.seqLen].allSatisfy { $0 == 0 })
    }

    @Test func llavaGeometry() {
        let c = SyntheticConfig.llava15
        #expect(c.imageSpans.count == 3 && c.imageSpans.allSatisfy { $0.count == 576 })
        #expect(c.imageGrid == GridSize(rows: 24, cols: 24) && c.headDim == 128 && c.heads == 32 && c.layers == 32)
        #expect(c.seqLength > 2300 && c.seqLength < 2500)
        #expect(c.problem() == nil)
    }
}
