import CKernels
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

    public init(
        compressionPoint: Int? = nil, proxyWindow: Int = 32, topK: Int = 16, perHead: Bool = false,
        decoding: DecodingReplay? = nil
    ) {
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
    /// Index into `modalities` of each position `< P`.
    public let modalityIndex: [Int]
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

    /// Builds the context of one layer from a policy `LayerContext` (the same mapped tensors):
    /// the evaluation rows, then the attention sums, the exact outputs and the eviction estimate.
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
        modality = mods
        let present = Modality.allCases.filter { m in mods.contains(m) }
        modalities = present
        modalityIndex = mods.map { m in present.firstIndex(of: m)! }
        let ids = info.imageIdOfPosition
        imageOf = (0 ..< P).map { $0 < ids.count ? ids[$0] : nil }
        elementBytes = ctx.tensors.keys?.dtype.width ?? 2

        let (chosen, kind) =
            override.map { o in (o, o.isEmpty ? EvaluationRows.none : o.lowerBound >= P ? .future : .proxy) }
            ?? Self.evaluationRows(compressionPoint: P, queryRows: qr, proxyWindow: settings.proxyWindow)
        rows = chosen
        self.kind = kind

        // Attention rows.
        var attn: [Double]? = nil
        var aNote: String? = nil
        if chosen.isEmpty {
            aNote = "the trace records no query rows near P = \(P) (rows \(qr.lowerBound)..<\(qr.upperBound))"
        } else {
            do { attn = try ctx.rows(chosen).values } catch {
                aNote = "needs attention rows \(chosen.lowerBound)..<\(chosen.upperBound): \(error)"
            }
        }
        attention = attn
        attentionNote = aNote
        let sums = AttentionSums(
            attn, rows: chosen, heads: H, seqLen: T, compressionPoint: P, modality: mods,
            modalities: modalities, topK: settings.topK)
        prefixMass = sums.prefixMass; tailMass = sums.tailMass; modalityMass = sums.modalityMass; topSets = sums.topSets

        // Exact outputs from q, k, v.
        let kt = ctx.tensors.keys, vt = ctx.tensors.values, qt = ctx.tensors.queries
        var oNote: String? = nil
        if chosen.isEmpty {
            oNote = aNote
        } else if qt == nil {
            oNote = "needs q (queries of the evaluation rows): the trace has none"
        } else if kt == nil {
            oNote = "needs k: the trace has none"
        } else if vt == nil {
            oNote = "needs v: the trace has none"
        } else if chosen.lowerBound < qr.lowerBound || chosen.upperBound > qr.upperBound {
            oNote = "needs q of rows \(chosen.lowerBound)..<\(chosen.upperBound)"
        }
        outputNote = oNote
        let vrows = vt.map { KVRows($0, seqLen: T, headDim: D) }
        let krows = kt.map { KVRows($0, seqLen: T, headDim: D) }
        valueRows = vrows
        keyRows = krows
        var exact = ExactOutputs()
        if oNote == nil, let krows, let vrows, let qt {
            exact = ExactOutputs(
                queries: qt, keys: krows, values: vrows, rows: chosen, queryRows: qr, heads: H, headDim: D,
                seqLen: T, compressionPoint: P, kvHeadOfQueryHead: kvHeadOfQueryHead, scale: scale)
        }
        queries = exact.queries
        weights = exact.weights; rowMax = exact.rowMax; prefixNum = exact.prefixNum; prefixZ = exact.prefixZ
        tailNum = exact.tailNum; tailZ = exact.tailZ; fullOutput = exact.fullOutput

        // Eviction-only estimate from the attention rows and v.
        if let a = attn, let vrows {
            let e = Self.evictionEstimate(
                a, values: vrows, rows: chosen, heads: H, headDim: D, seqLen: T, compressionPoint: P,
                kvHeadOfQueryHead: kvHeadOfQueryHead, prefixMass: sums.prefixMass, tailMass: sums.tailMass)
            evictNote = nil
            evictPrefixNum = e.prefix; evictTailNum = e.tail; evictFullOutput = e.output
        } else {
            evictNote = aNote ?? "needs v: the trace has none"
            evictPrefixNum = []; evictTailNum = []; evictFullOutput = []
        }
    }

    /// The evaluation rows: the recorded rows `≥ P` (`.future`), else the last `W` recorded prefill
    /// rows (`.proxy`), else none (`P ..< P`).
    static func evaluationRows(compressionPoint P: Int, queryRows qr: Range<Int>, proxyWindow W: Int) -> (Range<Int>, EvaluationRows) {
        let future = max(P, qr.lowerBound) ..< max(P, qr.upperBound)
        let proxy = max(P - W, qr.lowerBound, 0) ..< max(min(P, qr.upperBound), max(P - W, qr.lowerBound, 0))
        if !future.isEmpty { return (future, .future) }
        if !proxy.isEmpty { return (proxy, .proxy) }
        return (P ..< P, .none)
    }

    /// The sums of the recorded attention rows per `(h, r)`: prefix and tail mass, mass per
    /// modality, and the top-`k` prefix positions (all zero / empty without attention).
    struct AttentionSums {
        var prefixMass: [Double], tailMass: [Double], modalityMass: [[Double]], topSets: [[Int]]

        init(
            _ attn: [Double]?, rows chosen: Range<Int>, heads H: Int, seqLen T: Int, compressionPoint P: Int,
            modality mods: [Modality], modalities present: [Modality], topK: Int
        ) {
            let R = chosen.count
            var pm = [Double](repeating: 0, count: H * R), tm = pm
            var mm = [[Double]](repeating: [Double](repeating: 0, count: H * R), count: present.count)
            var tops = [[Int]](repeating: [], count: H * R)
            let k = min(topK, P)
            if let a = attn {
                let mIndex = mods.map { m in present.firstIndex(of: m)! }
                for h in 0 ..< H {
                    for r in 0 ..< R {
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
                    }
                }
            }
            prefixMass = pm; tailMass = tm; modalityMass = mm; topSets = tops
        }
    }

    /// The full-cache attention from q, k, v: one KV head's keys converted to `Double` at a time;
    /// values are read in place by the accumulation kernel. Empty when not computed.
    struct ExactOutputs {
        var queries: [Double]? = nil
        var weights = [Double](), rowMax = [Double](), prefixNum = [Double](), prefixZ = [Double]()
        var tailNum = [Double](), tailZ = [Double](), fullOutput = [Double]()

        init() {}

        init(
            queries qt: Tensor, keys krows: KVRows, values vrows: KVRows, rows chosen: Range<Int>, queryRows qr: Range<Int>,
            heads H: Int, headDim D: Int, seqLen T: Int, compressionPoint P: Int, kvHeadOfQueryHead map: [Int], scale sc: Double
        ) {
            let R = chosen.count, Q = qr.count
            var q = [Double](repeating: 0, count: H * R * D)
            q.withUnsafeMutableBufferPointer { b in
                for h in 0 ..< H {
                    qt.copyDoubles(from: (h * Q + chosen.lowerBound - qr.lowerBound) * D, count: R * D, into: b.baseAddress! + h * R * D)
                }
            }
            var w = [Double](repeating: 0, count: H * R * T)
            var mx = [Double](repeating: 0, count: H * R)
            var pn = [Double](repeating: 0, count: H * R * D), tn = pn
            var pz = [Double](repeating: 0, count: H * R), tz = pz
            var fo = pn
            var kbuf = [Double](repeating: 0, count: T * D)
            var lastG = -1
            kbuf.withUnsafeMutableBufferPointer { kbm in
                q.withUnsafeBufferPointer { qb in
                    w.withUnsafeMutableBufferPointer { wb in
                        pn.withUnsafeMutableBufferPointer { pnb in
                            tn.withUnsafeMutableBufferPointer { tnb in
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
                                        // q·k_j in the order of `dot`, by the kernel.
                                        ck_dot_rows(1, n, D, qp, D, kb, D, row, n)
                                        for j in 0 ..< n {
                                            let l = sc * row[j]
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
                                    vrows.accumulatePrefixAndTail(
                                        head: g, firstRow: chosen.lowerBound, rows: R, weights: UnsafePointer(wb.baseAddress! + h * R * T),
                                        compressionPoint: P, prefix: pnb.baseAddress! + h * R * D, tail: tnb.baseAddress! + h * R * D)
                                }
                            }
                        }
                    }
                }
            }
            for x in 0 ..< H * R {
                let z = pz[x] + tz[x]
                for d in 0 ..< D { fo[x * D + d] = (pn[x * D + d] + tn[x * D + d]) / z }
            }
            queries = q
            weights = w; rowMax = mx; prefixNum = pn; prefixZ = pz; tailNum = tn; tailZ = tz; fullOutput = fo
        }
    }

    /// The eviction-only estimate: `Σ_{j<P, j≤i} A v`, `Σ_{P≤j≤i} A v` and their normalised sum
    /// `o_A` (0 for a row without mass), `[H·R·D]` each.
    static func evictionEstimate(
        _ a: [Double], values vrows: KVRows, rows chosen: Range<Int>, heads H: Int, headDim D: Int, seqLen T: Int,
        compressionPoint P: Int, kvHeadOfQueryHead map: [Int], prefixMass pm: [Double], tailMass tm: [Double]
    )
        -> (prefix: [Double], tail: [Double], output: [Double])
    {
        let R = chosen.count
        var epn = [Double](repeating: 0, count: H * R * D), etn = epn, efo = epn
        a.withUnsafeBufferPointer { ab in
            epn.withUnsafeMutableBufferPointer { pb in
                etn.withUnsafeMutableBufferPointer { tb in
                    for h in 0 ..< H {
                        vrows.accumulatePrefixAndTail(
                            head: map[h], firstRow: chosen.lowerBound, rows: R, weights: ab.baseAddress! + h * R * T,
                            compressionPoint: P, prefix: pb.baseAddress! + h * R * D, tail: tb.baseAddress! + h * R * D)
                    }
                }
            }
        }
        for x in 0 ..< H * R {
            let z = pm[x] + tm[x]
            for d in 0 ..< D { efo[x * D + d] = z > 0 ? (epn[x * D + d] + etn[x * D + d]) / z : 0 }
        }
        return (epn, etn, efo)
    }
}

extension KVRows {
    /// `accumulateCausal` over the prefix positions `0 ..< P` into `prefix` and over the tail
    /// `P ..< T` into `tail`, with weight rows of stride `T`.
    func accumulatePrefixAndTail(
        head g: Int, firstRow: Int, rows R: Int, weights w: UnsafePointer<Double>, compressionPoint P: Int,
        prefix: UnsafeMutablePointer<Double>, tail: UnsafeMutablePointer<Double>
    ) {
        accumulateCausal(
            head: g, firstRow: firstRow, rows: R, weights: w, ldw: seqLen, positions: Array(0 ..< P), into: prefix, subtract: false)
        accumulateCausal(
            head: g, firstRow: firstRow, rows: R, weights: w, ldw: seqLen, positions: Array(P ..< seqLen), into: tail, subtract: false)
    }
}

/// Small numeric kernels on contiguous `Double` vectors.
enum Kernels {
    /// `sums[r] ±= w[r·ldw + p]` for each `p` of `pos` in order with `p ≤ firstRow + r` (the causal
    /// limit), for `r < rows`: each row's sum is exactly the scalar loop over `pos`. Blocked calls
    /// where rows see the same positions, one call per row for the rest (`causal`).
    static func gatherSum(
        firstRow: Int, rows: Int, weights w: UnsafePointer<Double>, ldw: Int, positions pos: [Int],
        into sums: UnsafeMutablePointer<Double>, subtract: Bool
    ) {
        causal(columns: pos, positions: pos, firstRow: firstRow, rows: rows) { r, n, cols in
            ck_gather_sum(n, w + r * ldw, ldw, cols.baseAddress!, cols.count, sums + r, subtract ? 1 : 0)
        }
    }

    /// Visits the columns that evaluation rows `firstRow ..< firstRow + rows` see under the causal
    /// limit: column `columns[k]` is visible to row `i` when `positions[k] ≤ i`. Calls
    /// `body(r, n, cols)` for rows `r ..< r + n`, each of which sums exactly `cols` next, in the
    /// order of `columns`; every row is handed its visible columns in that order, none twice.
    /// - Every position `≤ firstRow`: one call for all rows.
    /// - The positions `≤ firstRow` all before the others (an ascending list, say): one call for all
    ///   rows with those, then one call per row with the later ones it sees. Each row's sum runs over
    ///   its columns in the same order as a filter of the whole list, so blocked kernels give results
    ///   bit-identical to row-by-row ones.
    /// - Otherwise one call per row with its visible columns.
    /// Empty lists are never handed to `body`. (Not inlined: per call, not per element; inlined into
    /// `ReplayLayer.init`, it crashed the Swift 6.3.1 optimiser, SILCombine.)
    @inline(never)
    static func causal(
        columns: [Int], positions: [Int], firstRow: Int, rows: Int,
        _ body: (_ row: Int, _ rows: Int, _ columns: UnsafeBufferPointer<Int>) -> Void
    ) {
        precondition(columns.count == positions.count)
        guard let maxP = positions.max(), rows > 0 else { return }
        columns.withUnsafeBufferPointer { cb in
            if maxP <= firstRow { body(0, rows, cb); return }
            let k = positions.firstIndex { $0 > firstRow }!
            let partitioned = positions[k...].allSatisfy { $0 > firstRow }
            let start = partitioned ? k : 0
            if partitioned && k > 0 { body(0, rows, UnsafeBufferPointer(rebasing: cb[..<k])) }
            var mine: [Int] = []
            mine.reserveCapacity(columns.count - start)
            for r in 0 ..< rows {
                let i = firstRow + r
                mine.removeAll(keepingCapacity: true)
                for x in start ..< columns.count where positions[x] <= i { mine.append(cb[x]) }
                if !mine.isEmpty { mine.withUnsafeBufferPointer { body(r, 1, $0) } }
            }
        }
    }
}
