import Foundation
import KVPolicies
import KVTrace

/// How a replay runs through decoding (docs/metrics.md#replay-through-decoding): the policy
/// compresses once at `P` (look-once, as `Replay`), then every generated row `i = P + t − 1`
/// (step `t = 1, 2, …`) is measured against the cache as it stands when token `i` is processed.
///
/// The cache of KV head `g` at step `t` is its kept prefix slots plus the generated positions
/// `P … i` it still holds. Token `i` is appended after its row was measured; then, with
/// `evictPerStep`, H2O's decode rule evicts one token, or, every `recompressEvery` steps, the
/// policy runs again on the cache. Without either, generated tokens only append (the cache grows
/// from `C` to `C + t`).
///
/// "The attention seen so far" after step `t` is, per query head `h` and cached position `j`,
/// `s_t[h, j] = Σ_{i < P + t} A[h, i, j]`: the prefill column sums (rows `0 ..< P`) plus the
/// generated rows `P ..< P + t`, as the trace records them (the full-cache model's rows; rows of
/// tokens evicted since still count, as in H2O's accumulated score).
public struct DecodingReplay: Sendable, Hashable, Codable {
    /// Run the policy again on the cache after every `N` steps (nil: never). The policy sees the
    /// cache as a trace of its own (positions in ascending order, `P' = |cache|`): the recorded
    /// attention rows and `q` of the cached positions restricted to the cached keys, `k`, `v`,
    /// `k_norm` and modality of the cached positions, image spans cut to their cached tokens, and
    /// `attn_colsum` = `s_t`. Its budget is the one resolved at `P` (the same `hh` and `r`). When
    /// the KV heads hold different positions, it runs on each KV head's cache (with that head's
    /// query heads) separately. Eviction-only policies; `N ≥ 1`.
    public var recompressEvery: Int?
    /// H2O's decode rule (arXiv 2306.14048; `H2OKVCache_LayerWise.__call__` of its reference
    /// code): after token `i` is appended, while the cache of KV head `g` holds more than
    /// `C_g = max(C, |S_g|)` tokens, evict, among the cached positions other than the last `r` in
    /// cache order, the one of lowest accumulated attention `s_t` (combined over the query heads
    /// of `g` by `--gqa`; ties keep the lower position). Eviction-only policies.
    public var evictPerStep: Bool

    public init(recompressEvery: Int? = nil, evictPerStep: Bool = false) {
        self.recompressEvery = recompressEvery
        self.evictPerStep = evictPerStep
    }

    /// True when the cache changes after compression (beyond appending generated tokens).
    public var changesCache: Bool { recompressEvery != nil || evictPerStep }

    /// A one-line message when the setting is not valid, else nil.
    public var problem: String? {
        if let n = recompressEvery, n < 1 { return "--recompress-every must be ≥ 1, got \(n)" }
        if recompressEvery != nil && evictPerStep { return "--recompress-every and --evict-per-step: choose one" }
        return nil
    }

    /// A label for figures and messages: `look-once`, `recompress every 4`, `evict per step`.
    public var label: String {
        if let n = recompressEvery { return n == 1 ? "recompress every step" : "recompress every \(n) steps" }
        return evictPerStep ? "evict one per step (H2O decode rule)" : "look-once"
    }

    /// The generated rows a decoding replay measures at compression point `P`: the recorded rows
    /// `P ..< query_rows.stop`, one step each. Throws when the trace records none, or when rows
    /// between `P` and the first recorded one are missing.
    public static func rows(_ info: TraceInfo, compressionPoint P: Int) throws -> Range<Int> {
        let qr = info.shape.queryRows
        guard qr.upperBound > P else {
            throw SimulatorError(
                "\(info.name): --decoding needs generated rows (recorded query rows ≥ P = \(P)); the trace records rows \(qr.lowerBound)..<\(qr.upperBound)"
            )
        }
        guard qr.lowerBound <= P else {
            throw SimulatorError(
                "\(info.name): --decoding needs every row from P = \(P) on; the trace records rows \(qr.lowerBound)..<\(qr.upperBound)")
        }
        return P ..< qr.upperBound
    }
}

/// The decoding replay of one layer (see `DecodingReplay`): one set of result rows per step, with
/// `step = t`. Row metrics at step `t` are the mean over the rows `P … P + t − 1` of each row's
/// value against the cache it saw (rows, then heads, as docs/metrics.md#aggregation); metrics that
/// describe the cache (`Metric.describesCache`) are those of the cache at step `t`. At the last
/// step of a look-once replay, every value equals `Replay`'s.
public enum DecodingEngine {
    public static func run(
        trace: any TraceSource, layer l: Int, runs: [PlannedRun], metrics: [any Metric],
        settings: EvaluationSettings, decoding: DecodingReplay
    ) throws -> [ResultRow] {
        let info = trace.info
        let tensors = try trace.layer(l)
        let P = settings.compressionPoint ?? info.shape.prefillLen
        let steps = try DecodingReplay.rows(info, compressionPoint: P)
        let cache = WorkCache()
        var rowContexts: [EvaluationContext] = []
        var out: [ResultRow] = []
        for run in runs {
            let ctx = LayerEngine.context(
                run, info: info, tensors: tensors, compressionPoint: P, trace: trace, cache: cache, settings: settings)
            if rowContexts.isEmpty { rowContexts = steps.map { EvaluationContext(ctx, settings: settings, rows: $0 ..< $0 + 1) } }
            let template = LayerEngine.Template(
                info: info, combination: run.combination, P: P, nominal: ctx.budget.nominal,
                context: rowContexts[0])
            func failed(_ why: String, from step: Int) {
                guard step <= steps.count else { return }
                for t in step ... steps.count {
                    for m in metrics {
                        for s in m.series(info, compressionPoint: P, merges: run.merges) {
                            var r = template.row(s, layer: l, head: nil, actual: .nan, value: nil, note: why)
                            r.step = t; r.evalRowCount = t
                            out.append(r)
                        }
                    }
                }
            }
            let first: LayerDecision
            do { first = try run.policy.decide(ctx) } catch { failed("\(error)", from: 1); continue }
            if decoding.changesCache && (run.merges || first.mergeCount > 0) {
                throw SimulatorError(
                    "--\(decoding.evictPerStep ? "evict-per-step" : "recompress-every"): \(run.combination.policy) merges; only eviction policies can evict again during decoding"
                )
            }
            var state = CacheState(first, prefill: P, nominal: ctx.budget.nominal, recent: ctx.budget.recent)
            var seen: SeenAttention? = nil
            if decoding.changesCache {
                do { seen = try SeenAttention(ctx) } catch { failed("\(error)", from: 1); continue }
            }
            var sums = RowSums()
            for (index, i) in steps.enumerated() {
                let t = index + 1
                let ec = rowContexts[index]
                let (decision, gone) = state.view(at: i)
                let replay = ReplayLayer(decision, merges: run.merges, context: ec, evictedGenerated: gone)
                let actual = Double(decision.actual.reduce(0, +)) / Double(max(decision.heads.count, 1))
                for m in metrics {
                    let series = m.series(info, compressionPoint: P, merges: run.merges)
                    let cacheMetric = type(of: m).describesCache
                    func emit(_ s: MetricSeries, head: Int?, actual a: Double, value: Double?, note: String?) {
                        var r = template.row(s, layer: l, head: head, actual: a, value: value, note: note)
                        r.step = t
                        r.evalRows = .future
                        r.evalRowCount = t
                        out.append(r)
                    }
                    if let why = m.missing(replay, ec) {
                        for s in series { emit(s, head: nil, actual: actual, value: nil, note: why) }
                        continue
                    }
                    let values = try m.evaluate(replay, ec)
                    for s in series {
                        let mine = values.filter { s.matches($0) }
                        // Per head: this step's value (cache metrics), else the running mean over rows.
                        let heads: [MetricValue] = mine.map { v in
                            if cacheMetric { return v }
                            return sums.add(v, series: s)
                        }
                        if let whole = heads.first(where: { $0.head == nil }) {
                            emit(s, head: nil, actual: actual, value: whole.value, note: whole.note)
                            continue
                        }
                        let defined = heads.compactMap(\.value)
                        let note = defined.isEmpty ? (mine.first(where: { $0.note != nil })?.note ?? "undefined on this layer") : nil
                        emit(
                            s, head: nil, actual: actual, value: defined.isEmpty ? nil : defined.reduce(0, +) / Double(defined.count),
                            note: note)
                        if settings.perHead {
                            for v in heads.sorted(by: { ($0.head ?? -1) < ($1.head ?? -1) }) {
                                let g = ec.kvHeadOfQueryHead[v.head ?? 0]
                                emit(
                                    s, head: v.head ?? 0, actual: Double(decision.heads[g].kept.count), value: v.value,
                                    note: v.value == nil ? (v.note ?? "undefined") : nil)
                            }
                        }
                    }
                }
                // Token i joins the cache; its row joins the attention seen so far.
                state.append(i)
                guard var s = seen else { continue }
                if let a = ec.attention { s.add(row: a, columns: ec.seqLen) }
                seen = s
                do {
                    if decoding.evictPerStep {
                        state.evictOne(scores: s.perKVHead(ctx))
                    } else if let n = decoding.recompressEvery, t % n == 0, t < steps.count {
                        try state.recompress(run.policy, ctx: ctx, seen: s, upTo: i)
                    }
                } catch {
                    failed("step \(t): \(error)", from: t + 1)
                    break
                }
            }
        }
        return out
    }
}

/// The running sums behind "the mean over the rows up to `t`": per series and query head, the
/// sum and count of the defined row values, in row order (the same sums as `RowMean.mean`).
struct RowSums {
    struct Key: Hashable { var metric: String; var image: Int?; var source: String?; var target: String?; var head: Int? }
    var sum: [Key: Double] = [:]
    var count: [Key: Int] = [:]
    var note: [Key: String] = [:]

    /// Adds one row's value and returns the running mean (nil with the row's note while no row defines it).
    mutating func add(_ v: MetricValue, series s: MetricSeries) -> MetricValue {
        let k = Key(metric: s.metric, image: s.image, source: s.source, target: s.target, head: v.head)
        if let x = v.value { sum[k, default: 0] += x; count[k, default: 0] += 1 } else if note[k] == nil, let n = v.note { note[k] = n }
        guard let n = count[k], n > 0 else {
            return MetricValue(
                v.metric, head: v.head, image: v.image, source: v.source, target: v.target, value: nil, note: v.note ?? note[k])
        }
        return MetricValue(v.metric, head: v.head, image: v.image, source: v.source, target: v.target, value: sum[k]! / Double(n))
    }
}

/// `s_t[h, j]`: the attention every cached position has received so far, per query head, `[H][T]`.
struct SeenAttention {
    var scores: ScoreMatrix

    /// The prefill column sums `Σ_{i<P} A[h, i, j]` (`attn_colsum`, or the prefill rows).
    init(_ ctx: LayerContext) throws {
        let c = try ctx.colsum()
        let T = ctx.info.shape.seqLen, P = ctx.compressionPoint
        scores = ScoreMatrix(rows: c.rows, count: T)
        for h in 0 ..< c.rows { for j in 0 ..< P { scores[h, j] = c[h, j] } }
    }

    /// Adds one row `[H·1·T]` (an evaluation context's attention of a single row).
    mutating func add(row a: [Double], columns T: Int) {
        for h in 0 ..< scores.rows { for j in 0 ..< T { scores[h, j] += a[h * T + j] } }
    }

    /// Combined per KV head under `--gqa`, `[KVH][T]`.
    func perKVHead(_ ctx: LayerContext) -> ScoreMatrix {
        aggregateGQA(scores, map: ctx.kvHeadOfQueryHead, kvHeads: ctx.kvHeads, ctx.options.gqa)
    }
}

/// The cache of each KV head during a decoding replay: its positions in cache order.
struct CacheState {
    /// The decision made at `P` (used as is while nothing but appending happened).
    let first: LayerDecision
    let prefill: Int
    /// `C = hh + r` and `r` of the budget resolved at `P`.
    let nominal: Int, recent: Int
    /// Per KV head: cached positions in cache order (kept prefix slots, then generated positions).
    var positions: [[Int]]
    /// False once anything was evicted after `P`.
    var untouched = true
    /// Per KV head: the size H2O's rule holds, `max(C, |S_g|)`.
    let capacity: [Int]

    init(_ d: LayerDecision, prefill P: Int, nominal: Int, recent: Int) {
        first = d
        prefill = P
        self.nominal = nominal
        self.recent = recent
        positions = d.heads.map(\.kept)
        capacity = d.heads.map { max(nominal, $0.kept.count) }
    }

    /// The decision and the evicted generated positions row `i` sees (before token `i` joins).
    func view(at i: Int) -> (LayerDecision, [[Int]]) {
        if untouched { return (first, []) }
        let P = prefill
        var heads: [HeadDecision] = []
        var gone: [[Int]] = []
        for cached in positions {
            heads.append(HeadDecision(kept: cached.filter { $0 < P }, prefill: P))
            let held = Set(cached.filter { $0 >= P })
            gone.append((P ..< i).filter { !held.contains($0) })
        }
        return (LayerDecision(layer: first.layer, heads: heads, nominal: first.nominal, prefill: P, notes: first.notes), gone)
    }

    mutating func append(_ i: Int) {
        for g in positions.indices { positions[g].append(i) }
    }

    /// H2O's decode rule: per KV head over capacity, keep the top `n − r − excess` of the positions
    /// outside the last `r` by `scores[g]` (ties: lower position), and the last `r`.
    mutating func evictOne(scores s: ScoreMatrix) {
        for g in positions.indices {
            let cached = positions[g]
            let excess = cached.count - capacity[g]
            guard excess > 0 else { continue }
            let r = min(recent, cached.count)
            let candidates = Array(cached[0 ..< cached.count - r])
            let row = s.rows == 1 ? 0 : g
            let keep = Set(Selection.topK(candidates, k: max(0, candidates.count - excess), score: { s[row, $0] }))
            positions[g] = candidates.filter { keep.contains($0) } + cached[(cached.count - r)...]
            untouched = false
        }
    }

    /// Runs `policy` again on the cache (see `DecodingReplay.recompressEvery`) after token `i`.
    mutating func recompress(_ policy: any CachePolicy, ctx: LayerContext, seen: SeenAttention, upTo i: Int) throws {
        let G = positions.count
        let sorted = positions.map { $0.sorted() }
        let groups: [[Int]] = Set(sorted).count == 1 ? [Array(0 ..< G)] : (0 ..< G).map { [$0] }
        var next = sorted
        for kvs in groups {
            let view = try CacheView(ctx, positions: sorted[kvs[0]], kvHeads: kvs, seen: seen, lastRow: i)
            let vctx = LayerContext(
                info: view.info, tensors: view.tensors, budget: view.budget(nominal: nominal, recent: recent),
                options: ctx.options, compressionPoint: view.info.shape.seqLen, trace: nil, cache: nil
            ).named(ctx.policyID)
            let d = try policy.decide(vctx)
            guard d.mergeCount == 0 else { throw SimulatorError("\(policy.id) merged when run again on the cache") }
            for (k, g) in kvs.enumerated() { next[g] = d.heads[k].kept.map { sorted[kvs[0]][$0] } }
        }
        positions = next
        untouched = false
    }
}

/// The cache of some KV heads as a trace of its own: positions `cached` (ascending) become
/// `0 ..< n`; tensors are gathered in `Double` (see `DecodingReplay.recompressEvery`).
struct CacheView {
    let info: TraceInfo
    let tensors: LayerTensors

    init(_ ctx: LayerContext, positions cached: [Int], kvHeads kvs: [Int], seen: SeenAttention, lastRow i: Int) throws {
        let src = ctx.info, shape = src.shape
        let n = cached.count, D = shape.headDim, T = shape.seqLen
        let heads = shape.kvHeadOfQueryHead.indices.filter { kvs.contains(shape.kvHeadOfQueryHead[$0]) }
        let H = heads.count, Gv = kvs.count
        let map = heads.map { kvs.firstIndex(of: shape.kvHeadOfQueryHead[$0])! }
        let qr = shape.queryRows
        // Cached positions with a recorded row form a suffix of the view.
        let firstRow = cached.firstIndex { $0 >= qr.lowerBound } ?? n
        let rows = Array(cached[firstRow...])
        let Q = rows.count
        var attn: Tensor? = nil, queries: Tensor? = nil
        if Q > 0 {
            let block = try ctx.rows(rows[0] ..< i + 1)
            var a = [Double](repeating: 0, count: H * Q * n)
            for (hv, h) in heads.enumerated() {
                for (r, p) in rows.enumerated() {
                    for (j, c) in cached.enumerated() where c <= p {
                        a[(hv * Q + r) * n + j] = block.values[block.offset(h, p - rows[0]) + c]
                    }
                }
            }
            attn = Self.tensor(a, [H, Q, n], "attn")
            if let q = ctx.tensors.queries {
                var qv = [Double](repeating: 0, count: H * Q * D)
                qv.withUnsafeMutableBufferPointer { b in
                    for (hv, h) in heads.enumerated() {
                        for (r, p) in rows.enumerated() {
                            q.copyDoubles(from: (h * qr.count + p - qr.lowerBound) * D, count: D, into: b.baseAddress! + (hv * Q + r) * D)
                        }
                    }
                }
                queries = Self.tensor(qv, [H, Q, D], "q")
            }
        }
        var colsum = [Double](repeating: 0, count: H * n)
        for (hv, h) in heads.enumerated() { for (j, c) in cached.enumerated() { colsum[hv * n + j] = seen.scores[h, c] } }
        func gather(_ t: Tensor?, _ name: String, width: Int) -> Tensor? {
            guard let t else { return nil }
            var v = [Double](repeating: 0, count: Gv * n * width)
            v.withUnsafeMutableBufferPointer { b in
                for (gv, g) in kvs.enumerated() {
                    for (j, c) in cached.enumerated() {
                        t.copyDoubles(from: (g * T + c) * width, count: width, into: b.baseAddress! + (gv * n + j) * width)
                    }
                }
            }
            return Self.tensor(v, width == 1 ? [Gv, n] : [Gv, n, width], name)
        }
        tensors = LayerTensors(
            layer: ctx.layer, file: "cache of layer \(ctx.layer)", attention: attn,
            colsum: Self.tensor(colsum, [H, n], "attn_colsum"), queries: queries,
            keys: gather(ctx.tensors.keys, "k", width: D), values: gather(ctx.tensors.values, "v", width: D),
            keyNorms: gather(ctx.tensors.keyNorms, "k_norm", width: 1),
            valueNorms: gather(ctx.tensors.valueNorms, "v_norm", width: 1))
        let modality = cached.map { $0 < src.modality.count ? src.modality[$0] : .text }
        // An image's cached tokens are contiguous in the view (its span is contiguous in the trace).
        let images: [ImageSpan] = src.images.compactMap { span in
            let inside = cached.indices.filter { j in span.tokenRanges.contains { $0.contains(cached[j]) } }
            guard let lo = inside.first, let hi = inside.last else { return nil }
            return ImageSpan(id: span.id, positions: lo ..< hi + 1, isPseudo: span.isPseudo, source: span.source, label: span.label)
        }
        let vshape = TraceShape(
            layers: shape.layers, queryHeads: H, kvHeads: Gv, headDim: D, seqLen: n, prefillLen: n,
            queryRows: firstRow ..< n, kvHeadOfQueryHead: map)
        var vinfo = TraceInfo(
            name: src.name, modelName: src.modelName, shape: vshape, modality: modality, images: images,
            recordedLayers: [ctx.layer], attnScale: src.attnScale, causal: src.causal,
            syntheticImageTokens: src.syntheticImageTokens, contentHash: src.contentHash)
        vinfo.slidingWindows = src.slidingWindows
        info = vinfo
    }

    /// The budget resolved at `P`, as tokens: `C` kept with the same recent window `r`.
    func budget(nominal C: Int, recent r: Int) -> BudgetSpec {
        // int(C · s) = r exactly: s = (r + ½) / C lies strictly between r / C and (r + 1) / C.
        .tokens(C, recentShare: C == 0 || r >= C ? 1 : (Double(r) + 0.5) / Double(C))
    }

    static func tensor(_ v: [Double], _ shape: [Int], _ name: String) -> Tensor {
        let data = v.withUnsafeBufferPointer { Data(buffer: $0) }
        return Tensor(dtype: .f64, shape: shape, storage: .copying(data, name: name), offset: 0)
    }
}
