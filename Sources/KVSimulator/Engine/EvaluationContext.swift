import Foundation
import KVPolicies
import KVTrace

/// Run-wide evaluation settings.
public struct EvaluationSettings: Sendable, Hashable, Codable {
    /// `P`; nil → the trace's prefill length.
    public var compressionPoint: Int?
    /// Proxy window `W`: the last `W` prefill rows are used when the trace has no future rows.
    public var proxyWindow: Int
    /// `k` of `topk_recall`.
    public var topK: Int
    /// Also emit one row per query head.
    public var perHead: Bool
    /// Replay through decoding, one set of rows per generated step (`step` column); nil: measure
    /// once on the evaluation rows (default).
    public var decoding: DecodingReplay?

    public init(compressionPoint: Int? = nil, proxyWindow: Int = 32, topK: Int = 16, perHead: Bool = false,
                decoding: DecodingReplay? = nil) {
        self.compressionPoint = compressionPoint
        self.proxyWindow = proxyWindow
        self.topK = topK
        self.perHead = perHead
        self.decoding = decoding
    }
}

/// Everything about one layer that does not depend on the decision, computed once and shared by
/// every policy and budget: the evaluation rows, their attention and its sums, the top-k sets,
/// and (when `q`, `k`, `v` are recorded) the full-cache attention weights and outputs.
///
/// All sums are in `Double`, in ascending key order, so that the full cache reproduces them
/// bit for bit (recall exactly 1, output error exactly 0).
public struct EvaluationContext: Sendable {
    public let info: TraceInfo
    public let layer: Int
    /// `P`.
    public let compressionPoint: Int
    /// Absolute positions of the evaluation rows.
    public let rows: Range<Int>
    public let kind: EvaluationRows
    public let topK: Int
    /// `H`, `KVH`, `D`, `T`.
    public let queryHeads: Int, kvHeads: Int, headDim: Int, seqLen: Int
    public let kvHeadOfQueryHead: [Int]
    /// Modality of each position `< P`.
    public let modality: [Modality]
    /// Modalities present before `P`, in code order.
    public let modalities: [Modality]
    /// Image id of each position `< P`, or nil.
    public let imageOf: [Int?]
    /// Bytes per K/V element (the trace's `k` dtype, else 2).
    public let elementBytes: Int

    // Attention of the evaluation rows.
    /// `A[h][r][j]`, `[H·R·T]`, or nil with `attentionNote`.
    public let attention: [Double]?
    public let attentionNote: String?
    /// `Σ_{j<P, j≤i} A`, `Σ_{P≤j≤i} A` per `(h, r)`.
    public let prefixMass: [Double]
    public let tailMass: [Double]
    /// `[m][h·R + r]`: `Σ_{j<P, mod(j)=m} A` for each modality of `modalities`.
    public let modalityMass: [[Double]]
    /// Top-`k` positions of `A[h, i, 0..<P]` per `(h, r)` (ties → lowest position).
    public let topSets: [[Int]]

    // Exact outputs (q, k, v).
    /// Keys and values `[KVH][T][D]` of the layer (read in place), when recorded.
    let keyRows: KVRows?
    let valueRows: KVRows?
    /// Queries of the evaluation rows `[H·R·D]`, or nil with `outputNote`.
    public let queries: [Double]?
    public let outputNote: String?
    /// `exp(s·q·k_j − m)` for `j ≤ i`, else 0: `[H·R·T]`; `m` per row.
    public let weights: [Double]
    public let rowMax: [Double]
    /// `Σ_{j<P, j≤i} w_j v_j` and `Σ w_j` (prefix), and the same over `P ≤ j ≤ i` (tail).
    public let prefixNum: [Double]
    public let prefixZ: [Double]
    public let tailNum: [Double]
    public let tailZ: [Double]
    /// Full-cache outputs `o` `[H·R·D]`.
    public let fullOutput: [Double]
    public let scale: Double

    // Eviction estimate (attention rows and v).
    public let evictNote: String?
    /// `Σ_{j<P, j≤i} A v` and `Σ_{P≤j≤i} A v`, `[H·R·D]`; full-cache estimate `o_A`.
    public let evictPrefixNum: [Double]
    public let evictTailNum: [Double]
    public let evictFullOutput: [Double]

    /// Number of evaluation rows.
    public var rowCount: Int { rows.count }

    /// Builds the context of one layer from a policy `LayerContext` (the same mapped tensors).
    /// `rows` overrides the evaluation rows (a decoding replay measures one generated row at a
    /// time); nil chooses them as docs/metrics.md#evaluation-rows says.
    public init(_ ctx: LayerContext, settings: EvaluationSettings, rows override: Range<Int>? = nil) {
        let info = ctx.info
        let H = info.shape.queryHeads, G = info.shape.kvHeads, D = info.shape.headDim, T = info.shape.seqLen
        let P = ctx.compressionPoint
        let qr = info.shape.queryRows
        self.info = info
        layer = ctx.layer
        compressionPoint = P
        queryHeads = H; kvHeads = G; headDim = D; seqLen = T
        kvHeadOfQueryHead = info.shape.kvHeadOfQueryHead
        topK = settings.topK
        scale = info.attnScale
        let mods = (0 ..< P).map { $0 < info.modality.count ? info.modality[$0] : .text }
        let present = Modality.allCases.filter { m in mods.contains(m) }
        modality = mods
        modalities = present
        let ids = info.imageIdOfPosition
        imageOf = (0 ..< P).map { $0 < ids.count ? ids[$0] : nil }
        elementBytes = ctx.tensors.keys?.dtype.width ?? 2

        // Evaluation rows: recorded rows ≥ P, else the last W prefill rows.
        let future = max(P, qr.lowerBound) ..< max(P, qr.upperBound)
        let proxy = max(P - settings.proxyWindow, qr.lowerBound, 0) ..< max(min(P, qr.upperBound), max(P - settings.proxyWindow, qr.lowerBound, 0))
        let chosen: Range<Int>
        if let override { chosen = override; kind = override.isEmpty ? .none : override.lowerBound >= P ? .future : .proxy }
        else if !future.isEmpty { chosen = future; kind = .future }
        else if !proxy.isEmpty { chosen = proxy; kind = .proxy }
        else { chosen = P ..< P; kind = .none }
        rows = chosen
        let R = chosen.count

        // Attention rows.
        var attn: [Double]? = nil
        var aNote: String? = nil
        if R == 0 {
            aNote = "the trace records no query rows near P = \(P) (rows \(qr.lowerBound)..<\(qr.upperBound))"
        } else {
            do { attn = try ctx.rows(chosen).values } catch { aNote = "needs attention rows \(chosen.lowerBound)..<\(chosen.upperBound): \(error)" }
        }
        attention = attn
        attentionNote = aNote
        var pm = [Double](repeating: 0, count: H * R), tm = pm
        var mm = [[Double]](repeating: [Double](repeating: 0, count: H * R), count: modalities.count)
        var tops = [[Int]](repeating: [], count: H * R)
        let k = min(settings.topK, P)
        if let a = attn {
            let mIndex = mods.map { m in present.firstIndex(of: m)! }
            for h in 0 ..< H { for r in 0 ..< R {
                let i = chosen.lowerBound + r
                let base = (h * R + r) * T
                var s = 0.0
                for j in 0 ..< min(P, i + 1) { s += a[base + j] }
                var t = 0.0
                if i >= P { for j in P ... min(i, T - 1) { t += a[base + j] } }
                pm[h * R + r] = s
                tm[h * R + r] = t
                for j in 0 ..< min(P, i + 1) { mm[mIndex[j]][h * R + r] += a[base + j] }
                tops[h * R + r] = Selection.topK(0 ..< P, k: k, scores: a[base ..< base + P])
            } }
        }
        prefixMass = pm; tailMass = tm; modalityMass = mm; topSets = tops

        // Exact outputs from q, k, v: one KV head's keys converted to `Double` at a time; values
        // are read in place by the accumulation kernel.
        var oNote: String? = nil
        let kt = ctx.tensors.keys, vt = ctx.tensors.values, qt = ctx.tensors.queries
        if R == 0 { oNote = aNote }
        else if qt == nil { oNote = "needs q (queries of the evaluation rows): the trace has none" }
        else if kt == nil { oNote = "needs k: the trace has none" }
        else if vt == nil { oNote = "needs v: the trace has none" }
        else if chosen.lowerBound < qr.lowerBound || chosen.upperBound > qr.upperBound { oNote = "needs q of rows \(chosen.lowerBound)..<\(chosen.upperBound)" }
        outputNote = oNote
        let vrows = vt.map { KVRows($0, seqLen: T, headDim: D) }
        let krows = kt.map { KVRows($0, seqLen: T, headDim: D) }
        valueRows = vrows
        keyRows = krows
        let prefixPositions = Array(0 ..< P), tailPositions = Array(P ..< T)
        var w = [Double](), mx = [Double](), pn = [Double](), pz = [Double](), tn = [Double](), tz = [Double](), fo = [Double]()
        var qq: [Double]? = nil
        if oNote == nil, let krows, let vrows, let qt {
            let Q = qr.count
            var q = [Double](repeating: 0, count: H * R * D)
            q.withUnsafeMutableBufferPointer { b in
                for h in 0 ..< H { qt.copyDoubles(from: (h * Q + chosen.lowerBound - qr.lowerBound) * D, count: R * D, into: b.baseAddress! + h * R * D) }
            }
            w = [Double](repeating: 0, count: H * R * T)
            mx = [Double](repeating: 0, count: H * R)
            pn = [Double](repeating: 0, count: H * R * D); tn = pn
            pz = [Double](repeating: 0, count: H * R); tz = pz
            fo = pn
            let map = kvHeadOfQueryHead, sc = scale
            var kbuf = [Double](repeating: 0, count: T * D)
            var lastG = -1
            kbuf.withUnsafeMutableBufferPointer { kbm in q.withUnsafeBufferPointer { qb in
                w.withUnsafeMutableBufferPointer { wb in pn.withUnsafeMutableBufferPointer { pnb in tn.withUnsafeMutableBufferPointer { tnb in
                    let kb = UnsafePointer(kbm.baseAddress!)
                    for h in 0 ..< H {
                        let g = map[h]
                        if g != lastG { krows.copyHead(g, into: kbm.baseAddress!); lastG = g }
                        for r in 0 ..< R {
                            let i = chosen.lowerBound + r
                            let n = min(i + 1, T)
                            let row = wb.baseAddress! + (h * R + r) * T
                            let qp = qb.baseAddress! + (h * R + r) * D
                            var m = -Double.infinity
                            for j in 0 ..< n {
                                let l = sc * dot(qp, kb + j * D, D)
                                row[j] = l
                                m = Swift.max(m, l)
                            }
                            for j in 0 ..< n { row[j] = Foundation.exp(row[j] - m) }
                            mx[h * R + r] = m
                            var z = 0.0
                            for j in 0 ..< min(P, n) { z += row[j] }
                            pz[h * R + r] = z
                            var zt = 0.0
                            if n > P { for j in P ..< n { zt += row[j] } }
                            tz[h * R + r] = zt
                        }
                        let wh = UnsafePointer(wb.baseAddress! + h * R * T)
                        vrows.accumulateCausal(head: g, firstRow: chosen.lowerBound, rows: R, weights: wh, ldw: T,
                                               positions: prefixPositions, into: pnb.baseAddress! + h * R * D, subtract: false)
                        vrows.accumulateCausal(head: g, firstRow: chosen.lowerBound, rows: R, weights: wh, ldw: T,
                                               positions: tailPositions, into: tnb.baseAddress! + h * R * D, subtract: false)
                    }
                } } }
            } }
            for x in 0 ..< H * R {
                let z = pz[x] + tz[x]
                for d in 0 ..< D { fo[x * D + d] = (pn[x * D + d] + tn[x * D + d]) / z }
            }
            qq = q
        }
        queries = qq
        weights = w; rowMax = mx; prefixNum = pn; prefixZ = pz; tailNum = tn; tailZ = tz; fullOutput = fo

        // Eviction-only estimate from the attention rows and v.
        var eNote: String? = nil
        var epn = [Double](), etn = [Double](), efo = [Double]()
        if let a = attn, let vrows {
            epn = [Double](repeating: 0, count: H * R * D); etn = epn; efo = epn
            let map = kvHeadOfQueryHead
            a.withUnsafeBufferPointer { ab in epn.withUnsafeMutableBufferPointer { pb in etn.withUnsafeMutableBufferPointer { tb in
                for h in 0 ..< H {
                    let g = map[h]
                    let ah = ab.baseAddress! + h * R * T
                    vrows.accumulateCausal(head: g, firstRow: chosen.lowerBound, rows: R, weights: ah, ldw: T,
                                           positions: prefixPositions, into: pb.baseAddress! + h * R * D, subtract: false)
                    vrows.accumulateCausal(head: g, firstRow: chosen.lowerBound, rows: R, weights: ah, ldw: T,
                                           positions: tailPositions, into: tb.baseAddress! + h * R * D, subtract: false)
                }
            } } }
            for x in 0 ..< H * R {
                let z = pm[x] + tm[x]
                for d in 0 ..< D { efo[x * D + d] = z > 0 ? (epn[x * D + d] + etn[x * D + d]) / z : 0 }
            }
        } else {
            eNote = aNote ?? "needs v: the trace has none"
        }
        evictNote = eNote
        evictPrefixNum = epn; evictTailNum = etn; evictFullOutput = efo
    }
}

/// Small numeric kernels on contiguous `Double` vectors.
enum Kernels {
    /// `y += a·x`.
    @inline(__always)
    static func axpy(_ a: Double, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ n: Int) {
        var i = 0
        let av = SIMD8<Double>(repeating: a)
        while i + 8 <= n {
            let r = UnsafeMutableRawPointer(y + i)
            r.storeBytes(of: r.loadUnaligned(as: SIMD8<Double>.self) + av * UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Double>.self), as: SIMD8<Double>.self)
            i += 8
        }
        while i < n { y[i] += a * x[i]; i += 1 }
    }

    /// `y -= a·x`.
    @inline(__always)
    static func axmy(_ a: Double, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ n: Int) {
        var i = 0
        let av = SIMD8<Double>(repeating: a)
        while i + 8 <= n {
            let r = UnsafeMutableRawPointer(y + i)
            r.storeBytes(of: r.loadUnaligned(as: SIMD8<Double>.self) - av * UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Double>.self), as: SIMD8<Double>.self)
            i += 8
        }
        while i < n { y[i] -= a * x[i]; i += 1 }
    }
}
