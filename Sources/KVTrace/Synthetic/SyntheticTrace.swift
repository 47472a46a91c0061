import Foundation

/// Settings of a synthetic multimodal trace.
public struct SyntheticConfig: Sendable, Codable, Hashable {
    public var name = "synthetic"
    public var layers = 4
    public var heads = 4
    public var kvHeads = 2
    public var headDim = 32
    public var images = 2
    public var imageGrid = GridSize(rows: 4, cols: 4)
    /// Text tokens before the first image (system prompt).
    public var prefix = 12
    /// Text tokens between consecutive images.
    public var gap = 3
    /// Text tokens in all (prefix + gaps + the question after the last image).
    public var textLength = 40
    /// Generated tokens after the prompt (rows ≥ P are the true evaluation rows).
    public var generated = 8
    /// nil: every row (full maps). Otherwise the last `windowRows` prefill rows plus the generated rows.
    public var windowRows: Int?
    /// Store `q`, `k` and `v` (and their norms).
    public var storeQKV = true
    public var seed: UInt64 = 0
    public var dtype: DType = .f16

    public init() {}

    /// LLaVA-1.5-7B geometry: 32 layers, 32 heads (MHA), head dim 128, three 24×24 images of 576
    /// tokens, 600 text tokens, 16 generated, 32 window rows with column sums.
    public static var llava15: SyntheticConfig {
        var c = SyntheticConfig()
        c.name = "synthetic-llava-1.5"
        c.layers = 32; c.heads = 32; c.kvHeads = 32; c.headDim = 128
        c.images = 3; c.imageGrid = GridSize(rows: 24, cols: 24)
        c.prefix = 35; c.gap = 4; c.textLength = 600; c.generated = 16; c.windowRows = 32
        return c
    }

    /// A small trace for tests and quick looks: 4 layers, 4 heads over 2 KV heads, two 4×4 images.
    public static var tiny: SyntheticConfig { SyntheticConfig() }

    public var tokensPerImage: Int { imageGrid.count }
    public var prefillLength: Int { textLength + images * tokensPerImage }
    public var seqLength: Int { prefillLength + generated }

    /// Image spans in the final sequence.
    public var imageSpans: [Range<Int>] {
        (0 ..< images).map { i in
            let s = prefix + i * (tokensPerImage + gap)
            return s ..< s + tokensPerImage
        }
    }

    /// One-line problems with the settings, or nil.
    public func problem() -> String? {
        if layers < 1 { return "--layers must be ≥ 1" }
        if heads < 1 || kvHeads < 1 || heads % kvHeads != 0 { return "--heads must be a positive multiple of --kv-heads" }
        if headDim < 16 { return "--head-dim must be ≥ 16" }
        if images < 0 { return "--images must be ≥ 0" }
        if textLength < 1 { return "--text-len must be ≥ 1" }
        if prefix < 1 { return "--prefix must be ≥ 1 (the sink token)" }
        if gap < 0 { return "--gap must be ≥ 0" }
        if let size = sizeProblem() { return size }
        if images > 0, prefix + (images - 1) * gap > textLength {
            return "--text-len \(textLength) is shorter than --prefix + gaps (\(prefix + (images - 1) * gap))"
        }
        if generated < 0 { return "--generate must be ≥ 0" }
        if let w = windowRows, w < 1 || w > prefillLength { return "--last-prefill-rows must be in 1 … \(prefillLength)" }
        return nil
    }

    /// Overflow and memory checks of the sizes the settings imply, before anything is computed:
    /// `T = text + images · R·C + generated`, one layer's `H·rows·T` attention plus `KVH·T·D` keys and
    /// values (and `H·rows·D` queries) in float64 working memory must stay under `traceMemoryCap`.
    func sizeProblem() -> String? {
        func mul(_ xs: Int...) -> Int? {
            var p = 1
            for x in xs {
                let (r, o) = p.multipliedReportingOverflow(by: x)
                if o || x < 0 { return nil }
                p = r
            }
            return p
        }
        func add(_ xs: Int...) -> Int? {
            var p = 0
            for x in xs {
                let (r, o) = p.addingReportingOverflow(x)
                if o { return nil }
                p = r
            }
            return p
        }
        guard let perImage = mul(imageGrid.rows, imageGrid.cols) else { return "--grid \(imageGrid) overflows" }
        guard let imageTokens = mul(images, perImage), let gaps = mul(max(images - 1, 0), gap),
            add(prefix, gaps) != nil, let p = add(textLength, imageTokens), let t = add(p, generated)
        else {
            return "--text-len, --images, --grid and --generate give a sequence length that overflows"
        }
        let rows = windowRows.map { min(max($0, 0), p) + generated } ?? t
        let cap = traceMemoryCap
        guard let attn = mul(heads, rows, t, 8), let kv = mul(2, kvHeads, t, headDim, 8), let q = mul(heads, rows, headDim, 8),
            let total = add(attn, kv, q), total <= cap
        else {
            return
                "one layer of --heads \(heads), --kv-heads \(kvHeads), --head-dim \(headDim) and T = \(t) needs more than the memory cap of \(cap) bytes (KVSCOPE_MEMORY_CAP)"
        }
        return nil
    }
}

/// Writes synthetic multimodal traces whose attention is exactly the causal softmax of the stored
/// (rounded) `q·kᵀ` times `1/√D`, so every metric is consistent with the tensors.
///
/// What it models, through designed components of the query and key vectors:
/// * **attention sinks**: the first tokens' keys carry a large component along a direction every
///   query shares, so position 0 (and less so 1–3) draws a large share of each row;
/// * **recency**: rotary-style channels whose dot product is `Σ_f cos(ω_f (i − j))`, largest for
///   near positions;
/// * **text over image**: text keys lean toward the queries' modality channel and image keys away
///   from it, so in prefill a text token receives more attention on average than an image token
///   (the LOOK-M observation);
/// * **spatial locality inside an image**: 2-D rotary channels over each patch's row and column,
///   live only between image tokens, so an image query prefers nearby patches;
/// * **salient patches**: a few patches per image (seeded) get a key component the queries align with;
/// * **layers that differ**: the structured components grow with depth relative to the noise, so
///   early layers are broad and later ones sparse; heads get seeded multipliers for each component.
///
/// What it does not model: real token content and semantics, RoPE's exact frequencies, the effect of
/// generated text on later rows beyond recency, value vectors with structure (values are Gaussian),
/// and cross-layer dependence (each layer is drawn independently).
public enum SyntheticTraceGenerator {
    /// Writes the trace folder; `progress` is called after each layer.
    public static func write(_ c: SyntheticConfig, to folder: URL, progress: ((Int) -> Void)? = nil) throws {
        if let p = c.problem() { throw TraceError(file: folder.path, p) }
        let T = c.seqLength, P = c.prefillLength, H = c.heads, KVH = c.kvHeads, D = c.headDim
        let rows = c.windowRows.map { (P - $0) ..< T } ?? 0 ..< T
        var modality = [Modality](repeating: .text, count: T)
        var images: [ImageSpan] = []
        for (i, s) in c.imageSpans.enumerated() {
            for p in s { modality[p] = .image }
            images.append(ImageSpan(id: i, positions: s, grid: c.imageGrid, source: "synthetic"))
        }
        let shape = TraceShape(
            layers: c.layers, queryHeads: H, kvHeads: KVH, headDim: D, seqLen: T, prefillLen: P,
            queryRows: rows, kvHeadOfQueryHead: TraceShape.defaultGQAMap(queryHeads: H, kvHeads: KVH))
        let info = TraceInfo(
            name: c.name, modelName: "synthetic (kvscope synth)", shape: shape, modality: modality, images: images,
            recordedLayers: [], causal: true, syntheticImageTokens: false,
            extras: [
                "notes":
                    "Synthetic trace from kvscope synth: attention is the causal softmax of the stored q·k/√D; see kvscope synth --help for what it models."
            ])
        var writer = try AttnTraceWriter(folder: folder, info: info)
        for l in 0 ..< c.layers {
            try writer.write(layer: l, tensors: layer(l, config: c, modality: modality))
            progress?(l)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let settings = try JSONSerialization.jsonObject(with: encoder.encode(c))
        try writer.finish(extra: ["synthetic": settings, "colsum_over": "prefill rows 0 ..< prefill_len, float32"])
    }

    /// Builds one layer's tensors.
    static func layer(_ l: Int, config c: SyntheticConfig, modality: [Modality]) -> [TensorData] {
        let T = c.seqLength, P = c.prefillLength, H = c.heads, KVH = c.kvHeads, D = c.headDim
        let group = H / KVH
        let rows = c.windowRows.map { (P - $0) ..< T } ?? 0 ..< T
        let depth = c.layers > 1 ? Double(l) / Double(c.layers - 1) : 1
        let root = SplitMix64(seed: c.seed).derived(UInt64(l) + 1)
        // Patch coordinates of image tokens; salient patches.
        var coord = [(Double, Double)?](repeating: nil, count: T)
        var salient = [Double](repeating: 0, count: T)
        var srng = root.derived(0x5A11)
        for span in c.imageSpans {
            for (n, p) in span.enumerated() { coord[p] = (Double(n / c.imageGrid.cols), Double(n % c.imageGrid.cols)) }
            let k = max(1, span.count / 48)
            for _ in 0 ..< k { salient[span.lowerBound + Int(srng.uniform() * Double(span.count))] = 1 + 0.5 * srng.uniform() }
        }
        // Channel layout: 0 sink, 1 modality, 2 salience, 3 ..< 3+2F recency, then 4 spatial, then noise.
        let F = min(4, (D - 8) / 4)
        let recency = 3, spatial = 3 + 2 * F, noise = spatial + 4
        let freqs = (0 ..< F).map { 1.0 / pow(8.0, Double($0) + 1) * Double.pi }
        let scale = 1 / Double(D).squareRoot()
        // Each component adds `S · a · b` to the logit `q·k/√D`: q carries √(S√D)·a and k √(S√D)·b.
        // Strengths grow with depth against fixed noise, so early layers are broad and later ones sparse.
        func amp(_ strength: Double) -> Double { (strength / scale).squareRoot() }
        let aSink = amp(3 + 6 * depth), aMod = amp(1.5 + 0.5 * depth), aSal = amp(1 + depth)
        let aRec = amp(0.4 + 0.6 * depth), aSpa = amp(0.8 + 0.4 * depth)

        var k = [Float](repeating: 0, count: KVH * T * D)
        var v = [Float](repeating: 0, count: KVH * T * D)
        var q = [Float](repeating: 0, count: H * T * D)
        for g in 0 ..< KVH {
            var rng = root.derived(UInt64(100 + g))
            for t in 0 ..< T {
                let b = (g * T + t) * D
                let sink = t == 0 ? 1.0 : (t < 4 ? 0.35 : 0)
                k[b] = Float(aSink * sink)
                k[b + 1] = Float(aMod * (modality[t] == .text ? 0.6 : -0.6))
                k[b + 2] = Float(aSal * 1.2 * salient[t])
                for f in 0 ..< F {
                    k[b + recency + 2 * f] = Float(aRec * _cos(freqs[f] * Double(t)))
                    k[b + recency + 2 * f + 1] = Float(aRec * _sin(freqs[f] * Double(t)))
                }
                if let (r, cc) = coord[t] {
                    let w = 0.9 * Double.pi / Double(max(c.imageGrid.rows, c.imageGrid.cols))
                    k[b + spatial] = Float(aSpa * _cos(w * r)); k[b + spatial + 1] = Float(aSpa * _sin(w * r))
                    k[b + spatial + 2] = Float(aSpa * _cos(w * cc)); k[b + spatial + 3] = Float(aSpa * _sin(w * cc))
                }
                for d in noise ..< D { k[b + d] = Float(rng.normal() * 0.8) }
                for d in 0 ..< D { v[b + d] = Float(rng.normal()) }
            }
        }
        for h in 0 ..< H {
            var rng = root.derived(UInt64(10_000 + h))
            // Per-head multipliers: some heads sink-heavy, some local, some image-focused.
            let mSink = 0.6 + 0.8 * rng.uniform(), mMod = 0.5 + rng.uniform(), mSal = 0.5 + rng.uniform()
            let mRec = 0.4 + 1.2 * rng.uniform(), mSpa = 0.5 + rng.uniform()
            for t in 0 ..< T {
                let b = (h * T + t) * D
                q[b] = Float(aSink * mSink)
                q[b + 1] = Float(aMod * mMod)
                q[b + 2] = Float(aSal * mSal)
                for f in 0 ..< F {
                    q[b + recency + 2 * f] = Float(aRec * mRec * _cos(freqs[f] * Double(t)))
                    q[b + recency + 2 * f + 1] = Float(aRec * mRec * _sin(freqs[f] * Double(t)))
                }
                if let (r, cc) = coord[t] {
                    let w = 0.9 * Double.pi / Double(max(c.imageGrid.rows, c.imageGrid.cols))
                    q[b + spatial] = Float(aSpa * mSpa * _cos(w * r)); q[b + spatial + 1] = Float(aSpa * mSpa * _sin(w * r))
                    q[b + spatial + 2] = Float(aSpa * mSpa * _cos(w * cc)); q[b + spatial + 3] = Float(aSpa * mSpa * _sin(w * cc))
                }
                for d in noise ..< D { q[b + d] = Float(rng.normal() * 0.8) }
            }
        }
        // Round to the storage type, then compute attention from the rounded vectors.
        func round(_ x: inout [Float]) {
            switch c.dtype {
            case .f16: for i in x.indices { x[i] = Float(Float16(x[i])) }
            case .bf16:
                for i in x.indices { x[i] = Float(bitPattern: (x[i].bitPattern &+ 0x7FFF &+ ((x[i].bitPattern >> 16) & 1)) & 0xFFFF_0000) }
            default: break
            }
        }
        round(&q); round(&k); round(&v)
        let Q = rows.count
        var attn = [Float](repeating: 0, count: H * Q * T)
        var colsum = [Float](repeating: 0, count: H * T)
        let fscale = Float(scale)
        q.withUnsafeBufferPointer { qp in
            k.withUnsafeBufferPointer { kp in
                attn.withUnsafeMutableBufferPointer { ap in
                    colsum.withUnsafeMutableBufferPointer { cp in
                        let qb = UnsafeSendableBox(qp.baseAddress!), kb = UnsafeSendableBox(kp.baseAddress!)
                        let ab = UnsafeSendableBox(ap.baseAddress!), cb = UnsafeSendableBox(cp.baseAddress!)
                        parallelFor(H) { h in
                            let g = h / group
                            var logits = [Float](repeating: 0, count: T)
                            let lastRow = max(rows.upperBound, P)
                            for i in 0 ..< lastRow {
                                let inRows = rows.contains(i)
                                guard inRows || i < P else { continue }
                                let qi = qb.value + (h * T + i) * D
                                var mx = -Float.infinity
                                for j in 0 ... i {
                                    let s = dot(qi, kb.value + (g * T + j) * D, D) * fscale
                                    logits[j] = s
                                    mx = max(mx, s)
                                }
                                var z: Float = 0
                                for j in 0 ... i { let e = expf(logits[j] - mx); logits[j] = e; z += e }
                                let inv = 1 / z
                                if i < P { for j in 0 ... i { cb.value[h * T + j] += logits[j] * inv } }
                                if inRows {
                                    let row = ab.value + (h * Q + (i - rows.lowerBound)) * T
                                    for j in 0 ... i { row[j] = logits[j] * inv }
                                }
                            }
                        }
                    }
                }
            }
        }
        var out = [
            TensorData(name: "attn", floats: attn, shape: [H, Q, T], as: c.dtype),
            TensorData(name: "attn_colsum", floats: colsum, shape: [H, T], as: .f32),
        ]
        if c.storeQKV {
            var qRows = [Float](repeating: 0, count: H * Q * D)
            for h in 0 ..< H {
                for r in 0 ..< Q { for d in 0 ..< D { qRows[(h * Q + r) * D + d] = q[(h * T + rows.lowerBound + r) * D + d] } }
            }
            func norms(_ x: [Float]) -> [Float] {
                (0 ..< KVH * T).map { n in Float((0 ..< D).reduce(0.0) { $0 + Double(x[n * D + $1]) * Double(x[n * D + $1]) }.squareRoot())
                }
            }
            out += [
                TensorData(name: "q", floats: qRows, shape: [H, Q, D], as: c.dtype),
                TensorData(name: "k", floats: k, shape: [KVH, T, D], as: c.dtype),
                TensorData(name: "v", floats: v, shape: [KVH, T, D], as: c.dtype),
                TensorData(name: "k_norm", floats: norms(k), shape: [KVH, T], as: .f32),
                TensorData(name: "v_norm", floats: norms(v), shape: [KVH, T], as: .f32),
            ]
        }
        return out
    }
}
