import Foundation
import KVPolicies
import KVTrace

/// Kept indices dumped by another implementation (kvpress, KVCache-Factory, a notebook), read for
/// `kvscope compare` (docs/metrics.md#comparing-with-another-implementation).
///
/// Accepted files: a `.npy` array; a `.npz` or `.safetensors` file with a `kept` member, or with
/// one member per layer (names `0`, `layer_3`, `kept.3`, `kept_3`: the number is the layer); a
/// folder written by `simulate --save-cache` (`layer_NNN.safetensors`, each with `kept`).
/// Arrays are `[L, heads, C]` (layer `k` is the `k`-th recorded layer, or model layer `k` when
/// `L` is the model's layer count) or `[heads, C]` (one layer: the file's `layer` metadata as
/// `--save-cache` writes it, else `layer`). `heads` is the trace's KV heads or its query heads.
/// Entries are original positions; negative entries are padding (ragged decisions) and ignored;
/// repeats count once. Integer or whole-valued float dtypes.
public struct KeptIndices: Sendable {
    /// Per layer: one set of positions per head, ascending.
    public var layers: [Int: [[Int]]]
    /// True when the heads are query heads (else KV heads).
    public var perQueryHead: Bool
    /// The file, for messages.
    public var file: String

    /// Reads `path` and checks it against `info` at compression point `P`; a mismatch is one line
    /// naming the file. `layer` places a `[heads, C]` array without `layer` metadata.
    public init(_ path: String, info: TraceInfo, compressionPoint P: Int, layer: Int? = nil) throws {
        file = path
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw SimulatorError("\(path): no such file or folder")
        }
        // (tensor, the layer it holds when it is one layer's array)
        var arrays: [(Tensor, Int?)] = []
        func layerNumber(_ name: String) -> Int? {
            var s = Substring(name.hasSuffix(".npy") ? String(name.dropLast(4)) : name)
            for prefix in ["kept", "layer"] where s.lowercased().hasPrefix(prefix) { s = s.dropFirst(prefix.count) }
            if let c = s.first, "._-".contains(c) { s = s.dropFirst() }
            return s.isEmpty || !s.allSatisfy(\.isNumber) ? nil : Int(s)
        }
        func members(_ names: [String], _ get: (String) throws -> Tensor, metadataLayer: Int?) throws {
            if names.contains("kept") { arrays = [(try get("kept"), metadataLayer ?? layer)]; return }
            let numbered = names.compactMap { n in layerNumber(n).map { (n, $0) } }
            guard !numbered.isEmpty else {
                throw SimulatorError(
                    "\(path): no 'kept' member and no per-layer members (members: \(names.prefix(8).joined(separator: ", ")))")
            }
            arrays = try numbered.sorted { $0.1 < $1.1 }.map { (try get($0.0), $0.1) }
        }
        do {
            if isDir.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: path).filter {
                    $0.hasPrefix("layer_") && $0.hasSuffix(".safetensors")
                }.sorted()
                guard !names.isEmpty else {
                    throw SimulatorError("\(path): a folder without layer_NNN.safetensors files (as simulate --save-cache writes)")
                }
                for n in names {
                    let f = try SafeTensorsFile(url.appendingPathComponent(n))
                    guard let t = f.tensors["kept"] else { throw SimulatorError("\(path)/\(n): no 'kept' tensor") }
                    arrays.append((t, layerNumber(String(n.dropLast(".safetensors".count)))))
                }
            } else {
                switch url.pathExtension.lowercased() {
                case "npy": arrays = [(try NPY.read(url), layer)]
                case "npz":
                    let z = try NPZArchive(url)
                    try members(z.keys, { try z.array($0) }, metadataLayer: nil)
                case "safetensors":
                    let f = try SafeTensorsFile(url)
                    try members(f.names, { f.tensors[$0]! }, metadataLayer: f.metadata["layer"].flatMap { Int($0) })
                default: throw SimulatorError("\(path): expected .npy, .npz, .safetensors or a --save-cache folder")
                }
            }
        } catch let e as TraceError { throw SimulatorError(e.description) }

        let shape = info.shape
        let recorded = info.recordedLayers
        var out: [Int: [[Int]]] = [:]
        var heads: Int? = nil
        for (t, given) in arrays {
            guard t.dtype != .bool else {
                throw SimulatorError("\(path): kept indices of dtype \(t.dtype.rawValue), expected integers")
            }
            let per: [(Int, Tensor)]
            switch t.rank {
            case 3:
                guard given == nil || arrays.count == 1 else {
                    throw SimulatorError("\(path): a per-layer member has shape \(t.shape), expected [heads, C]")
                }
                let L = t.shape[0]
                let index: (Int) -> Int
                if L == recorded.count {
                    index = { recorded[$0] }
                } else if L == shape.layers {
                    index = { $0 }
                } else {
                    throw SimulatorError("\(path): shape \(t.shape): \(L) layers, the trace records \(recorded.count) (of \(shape.layers))")
                }
                per = (0 ..< L).map { (index($0), t.slice($0)) }
            case 2:
                guard let l = given ?? (recorded.count == 1 ? recorded[0] : nil) else {
                    throw SimulatorError("\(path): shape \(t.shape) is one layer's [heads, C]; say which with --layer")
                }
                per = [(l, t)]
            default:
                throw SimulatorError("\(path): shape \(t.shape), expected [L, heads, C] or [heads, C]")
            }
            for (l, a) in per {
                guard recorded.contains(l) else {
                    throw SimulatorError("\(path): layer \(l) is not recorded in the trace (\(recorded.count) layers recorded)")
                }
                let H = a.shape[0], C = a.shape[1]
                guard H == shape.kvHeads || H == shape.queryHeads else {
                    throw SimulatorError(
                        "\(path): layer \(l): \(H) heads, the trace has \(shape.kvHeads) KV heads and \(shape.queryHeads) query heads")
                }
                if let h = heads, h != H { throw SimulatorError("\(path): layers with \(h) and \(H) heads") }
                heads = H
                var sets: [[Int]] = []
                for h in 0 ..< H {
                    var s = Set<Int>()
                    for c in 0 ..< C {
                        let x = a.double(at: h * C + c)
                        guard x.isFinite, x == x.rounded() else {
                            throw SimulatorError("\(path): layer \(l) head \(h): entry \(x) is not an index")
                        }
                        if x < 0 { continue }
                        guard x < Double(P) else {
                            throw SimulatorError("\(path): layer \(l) head \(h): index \(Int(x)) is outside the prefix 0..<\(P)")
                        }
                        s.insert(Int(x))
                    }
                    sets.append(s.sorted())
                }
                if out[l] != nil { throw SimulatorError("\(path): layer \(l) is given twice") }
                out[l] = sets
            }
        }
        layers = out
        perQueryHead = (heads ?? shape.kvHeads) != shape.kvHeads
    }
}

/// One (layer, head) of `kvscope compare`: the overlap of KVScope's kept set `K` with the other
/// implementation's `O`, and the attention recall of each (docs/metrics.md#attention_recall, on the
/// same evaluation rows).
public struct KeptOverlap: Sendable, Codable, Hashable {
    public var layer: Int
    /// The head of the file: a KV head, or a query head (`perQueryHead`).
    public var head: Int
    public var kvscopeKept: Int
    public var otherKept: Int
    /// `|K ∩ O|`, `|K \ O|`, `|O \ K|`.
    public var common: Int
    public var onlyKvscope: Int
    public var onlyOther: Int
    /// `|K ∩ O| / |K ∪ O|` (1 when both are empty).
    public var jaccard: Double
    /// Attention recall of `K` and of `O` (mean over the query heads a KV head serves), nil when
    /// the trace has no evaluation rows.
    public var recallKvscope: Double?
    public var recallOther: Double?

    enum CodingKeys: String, CodingKey {
        case layer, head, kvscopeKept = "kvscope_kept", otherKept = "other_kept", common, onlyKvscope = "only_kvscope"
        case onlyOther = "only_other", jaccard, recallKvscope = "recall_kvscope", recallOther = "recall_other"
    }
}

/// The comparison of a policy's decisions with kept indices from another implementation.
public enum KeptComparison {
    /// Per recorded layer of `kept` (ascending) and head: KVScope's decision under `policy` at
    /// `budget` against the file's sets. Recall uses the evaluation rows of `settings`.
    public static func compare(
        _ kept: KeptIndices, trace: any TraceSource, policy: any CachePolicy, merges: Bool,
        budget: BudgetSpec, options: PolicyOptions, settings: EvaluationSettings = .init()
    ) throws -> [KeptOverlap] {
        let info = trace.info
        let P = settings.compressionPoint ?? info.shape.prefillLen
        let map = info.shape.kvHeadOfQueryHead
        var out: [KeptOverlap] = []
        for l in kept.layers.keys.sorted() {
            let theirs = kept.layers[l]!
            let ctx = try LayerContext(trace: trace, layer: l, budget: budget, options: options, compressionPoint: P, cache: WorkCache())
            let mine = try policy.decide(ctx)
            let ec = EvaluationContext(ctx, settings: settings)
            let recall = AttentionRecall()
            func recalls(_ d: LayerDecision, merges: Bool) throws -> [Double?] {
                guard recall.missing(ReplayLayer(d, merges: merges, context: ec), ec) == nil else { return map.map { _ in nil } }
                return try recall.evaluate(ReplayLayer(d, merges: merges, context: ec), ec).map(\.value)
            }
            let mineRecall = try recalls(mine, merges: merges)
            // The other sets as decisions: per KV head, or per query head (one decision per member of a group).
            var otherRecall = [Double?](repeating: nil, count: map.count)
            if kept.perQueryHead {
                let groupSize = map.indices.map { h in map.filter { $0 == map[h] }.count }.max() ?? 1
                for k in 0 ..< groupSize {
                    var heads = mine.heads.map { _ in HeadDecision(kept: [], prefill: P) }
                    var members: [Int: Int] = [:]
                    for (h, g) in map.enumerated() {
                        let rank = map[..<h].filter { $0 == g }.count
                        if rank == k { heads[g] = HeadDecision(kept: theirs[h], prefill: P); members[g] = h }
                    }
                    let r = try recalls(LayerDecision(layer: l, heads: heads, nominal: mine.nominal, prefill: P), merges: false)
                    for h in members.values { otherRecall[h] = r[h] }
                }
            } else {
                let d = LayerDecision(layer: l, heads: theirs.map { HeadDecision(kept: $0, prefill: P) }, nominal: mine.nominal, prefill: P)
                otherRecall = try recalls(d, merges: false)
            }
            for (head, o) in theirs.enumerated() {
                let g = kept.perQueryHead ? map[head] : head
                let k = Set(mine.heads[g].kept.filter { $0 < P })
                let other = Set(o)
                let common = k.intersection(other).count
                let union = k.union(other).count
                let served = kept.perQueryHead ? [head] : map.indices.filter { map[$0] == g }
                func mean(_ v: [Double?]) -> Double? {
                    let d = served.compactMap { v[$0] }
                    return d.count == served.count && !d.isEmpty ? d.reduce(0, +) / Double(d.count) : nil
                }
                out.append(
                    KeptOverlap(
                        layer: l, head: head, kvscopeKept: k.count, otherKept: other.count, common: common,
                        onlyKvscope: k.count - common, onlyOther: other.count - common,
                        jaccard: union == 0 ? 1 : Double(common) / Double(union),
                        recallKvscope: mean(mineRecall), recallOther: mean(otherRecall)))
            }
        }
        return out
    }

    /// The CSV of `rows` (header, one line per (layer, head), empty cells for missing recalls).
    public static func csv(_ rows: [KeptOverlap], perQueryHead: Bool) -> String {
        var s = "layer,head,head_kind,kvscope_kept,other_kept,common,only_kvscope,only_other,jaccard,recall_kvscope,recall_other\n"
        for r in rows {
            let cells = [
                String(r.layer), String(r.head), perQueryHead ? "query" : "kv", String(r.kvscopeKept), String(r.otherKept),
                String(r.common), String(r.onlyKvscope), String(r.onlyOther), ResultWriter.num(r.jaccard),
                ResultWriter.num(r.recallKvscope), ResultWriter.num(r.recallOther),
            ]
            s += cells.joined(separator: ",") + "\n"
        }
        return s
    }
}
