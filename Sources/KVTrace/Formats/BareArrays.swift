import CKernels
import Foundation

/// How the arrays of a bare `.npy`, `.npz` or `.safetensors` file map onto a trace
/// (docs/trace-format.md#bare-arrays). Every field is optional; a sidecar `<stem>.trace.json` may supply
/// metadata, and these flags override it.
public struct BareArrayMapping: Sendable, Hashable, Codable {
    public enum Layout: String, Sendable, Codable, CaseIterable { case hqt = "HQT", lhqt = "LHQT" }

    public var attn: String?
    public var colsum: String?
    public var keys: String?
    public var values: String?
    public var queries: String?
    public var modality: String?
    public var tokenKind: String?
    public var prefillLen: Int?
    public var queryStart: Int?
    public var layout: Layout?
    public var layer: Int?
    public var tril = false
    public var imageSpans: [Range<Int>]?
    public var placeholders: [Int]?
    public var tokensPerImage: Int?
    public var grid: GridSize?
    public var bf16 = false
    public var kvMap: [Int]?

    public init() {}

    /// True when any flag that only makes sense for bare arrays is set.
    public var isSet: Bool { self != BareArrayMapping() }
}

/// A trace made of bare arrays plus a mapping.
///
/// Each role's array is named by its mapping flag, else by the sidecar's `arrays`, else found by
/// its conventional member name (``conventionalNames``: `attention`/`attn`, `keys`/`k`, …) in a
/// `.npz` or `.safetensors`. Two conventional names of one role both present is an error naming
/// them; ``members`` says which array played which role and why.
public struct BareTrace: TraceSource {
    public let info: TraceInfo
    public let files: [(path: String, bytes: Int)]
    public let warnings: [TraceWarning]
    public let layout: BareArrayMapping.Layout
    /// Which array of the file plays which role, and how it was chosen (for `kvscope info`).
    public let members: [Member]
    let arrays: [String: Tensor]  // role → tensor, with a layer axis when layout is LHQT
    let tril: Bool
    let file: String
    /// The attention's column sums, gathered while its `.npz` member's CRC was checked.
    let attentionColumnSums: AttentionColumnSums?

    static let roles = ["attn", "attn_colsum", "q", "k", "v"]

    /// One array used for one role.
    public struct Member: Sendable, Hashable {
        public enum Origin: String, Sendable, Hashable {
            /// Named by a mapping flag.
            case flag
            /// Named by the sidecar's `arrays`.
            case sidecar
            /// Found by its conventional name, without a flag.
            case conventionalName = "found by name"
            /// A lone `.npy` given as the trace.
            case wholeFile = "the file itself"
        }
        /// The role: `attn`, `attn_colsum`, `q`, `k`, `v`, `token_kind` or `token_modality`.
        public var role: String
        /// The array's name in the file (or the `.npy` file beside it).
        public var name: String
        public var origin: Origin
        /// The flag that names this role (`--attn`, …).
        public var flag: String
    }

    /// The member names found without a flag, per role (the attn-trace tensor name first). Only
    /// `.npz` and `.safetensors` files are searched; a lone `.npy` is the attention (see the docs).
    public static let conventionalNames: [(role: String, flag: String, names: [String])] = [
        ("attn", "--attn", ["attn", "attention"]),
        ("attn_colsum", "--colsum", ["attn_colsum", "colsum"]),
        ("q", "--queries", ["q", "queries"]),
        ("k", "--keys", ["k", "keys"]),
        ("v", "--values", ["v", "values"]),
        ("token_kind", "--token-kind", ["token_kind"]),
        ("token_modality", "--modality", ["token_modality", "modality"]),
    ]

    public init(_ url: URL, mapping m: BareArrayMapping = .init()) throws {
        let path = url.path
        file = path
        guard FileManager.default.fileExists(atPath: path) else { throw TraceError(file: path, "no such file") }
        let ext = url.pathExtension.lowercased()
        let folder = url.deletingLastPathComponent()
        let npyOptions = NPY.Options(bf16: m.bf16)
        var files: [(String, Int)] = []
        var warnings: [TraceWarning] = []
        func size(_ p: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: p)[.size] as? Int) ?? 0 }
        files.append((path, size(path)))

        // The container's own arrays.
        var lookup: (String) throws -> Tensor?
        var available: [String] = []
        // Set while the attention is looked up in a `.npz`: its column sums are gathered during the CRC check.
        var sumsWhileChecking: ColumnSumGatherer?
        switch ext {
        case "npz":
            let z = try NPZArchive(url, options: npyOptions)
            available = z.keys
            lookup = { name in
                guard z.keys.contains(name) else { return nil }
                guard let gatherer = sumsWhileChecking else { return try z.array(name) }
                let (t, visited) = try z.array(name) { gatherer.plan(for: $0) }
                if visited { gatherer.finish() } else { sumsWhileChecking = nil }
                return t
            }
        case "safetensors":
            let st = try SafeTensorsFile(url)
            warnings += st.warnings
            available = st.names
            lookup = { st.tensors[$0] }
        case "npy":
            let t = try NPY.read(url, options: npyOptions)
            available = [url.lastPathComponent]
            lookup = { $0 == url.lastPathComponent || $0 == url.deletingPathExtension().lastPathComponent ? t : nil }
        default:
            throw TraceError(file: path, "unknown file type '.\(ext)': expected an attn-trace folder, .safetensors, .npz or .npy")
        }

        // Sidecar metadata.
        let sidecarURL = folder.appendingPathComponent(url.deletingPathExtension().lastPathComponent + ".trace.json")
        var sidecar: TraceJSON.Sidecar?
        if let d = FileManager.default.contents(atPath: sidecarURL.path) {
            sidecar = try TraceJSON.decode(TraceJSON.Sidecar.self, from: d, file: sidecarURL.path)
            files.append((sidecarURL.path, d.count))
        }
        let sidecarArrays = sidecar?.arrays ?? [:]
        var members: [Member] = []

        /// The conventional member of `role` present in the file, or nil; several is an error.
        func conventional(_ role: String) throws -> String? {
            guard ext != "npy", let entry = Self.conventionalNames.first(where: { $0.role == role }) else { return nil }
            let found = entry.names.filter { available.contains($0) }
            guard found.count <= 1 else {
                throw TraceError(
                    file: path,
                    "\(entry.flag): several arrays could play this role (\(found.joined(separator: ", "))); name one with \(entry.flag)")
            }
            return found.first
        }
        func resolve(_ flag: String?, role: String, flagName: String) throws -> Tensor? {
            let name = flag ?? sidecarArrays[role]
            guard let name else {
                if ext == "npy" { return try lookup(role) }
                guard let found = try conventional(role) else { return nil }
                members.append(Member(role: role, name: found, origin: .conventionalName, flag: flagName))
                return try lookup(found)
            }
            members.append(Member(role: role, name: name, origin: flag != nil ? .flag : .sidecar, flag: flagName))
            if name.hasSuffix(".npy") && ext != "npy" || (ext == "npy" && name.hasSuffix(".npy") && name != url.lastPathComponent) {
                let other = folder.appendingPathComponent(name)
                if FileManager.default.fileExists(atPath: other.path) {
                    files.append((other.path, size(other.path)))
                    return try NPY.read(other, options: npyOptions)
                }
            }
            guard let t = try lookup(name) else {
                throw TraceError(file: path, "\(flagName) \(name): no such array (found: \(available.joined(separator: ", ")))")
            }
            return t
        }
        var arrays: [String: Tensor] = [:]
        if ext == "npy" && m.attn == nil && m.colsum == nil {
            arrays["attn"] = try lookup(url.lastPathComponent)
            members.append(Member(role: "attn", name: url.lastPathComponent, origin: .wholeFile, flag: "--attn"))
        } else {
            if ext == "npz", !m.tril {
                sumsWhileChecking = ColumnSumGatherer(
                    prefill: m.prefillLen ?? sidecar?.prefillLen, queryStart: m.queryStart ?? sidecar?.queryRows?.start)
            }
            arrays["attn"] = try resolve(m.attn, role: "attn", flagName: "--attn")
        }
        let gathered = sumsWhileChecking?.sums
        sumsWhileChecking = nil
        if ext == "npy", m.colsum != nil, m.attn == nil {
            arrays["attn_colsum"] = try lookup(url.lastPathComponent)
            members.append(Member(role: "attn_colsum", name: url.lastPathComponent, origin: .wholeFile, flag: "--colsum"))
        } else {
            arrays["attn_colsum"] = try resolve(m.colsum, role: "attn_colsum", flagName: "--colsum")
        }
        arrays["q"] = try resolve(m.queries, role: "q", flagName: "--queries")
        arrays["k"] = try resolve(m.keys, role: "k", flagName: "--keys")
        arrays["v"] = try resolve(m.values, role: "v", flagName: "--values")
        for (role, t) in arrays where !t.dtype.isFloat {
            throw TraceError(file: path, tensor: role, "dtype \(t.dtype.rawValue) is not a float type")
        }
        // A zero-element array could carry any other dimension (then taken as T, H or D): refused.
        for role in Self.roles {
            if let t = arrays[role], t.count == 0 {
                throw TraceError(file: path, tensor: role, "shape \(t.shape.shapeText) has no elements")
            }
        }
        guard arrays["attn"] != nil || arrays["attn_colsum"] != nil || (arrays["q"] != nil && arrays["k"] != nil) else {
            throw TraceError(
                file: path,
                "no attention found: name the arrays with --attn, --colsum, or --queries with --keys, or call them attention, colsum, queries, keys (arrays: \(available.joined(separator: ", ")))"
            )
        }

        let (lay, numLayers) = try Self.layout(arrays, mapping: m, path: path)
        func inner(_ t: Tensor) -> [Int] { lay == .lhqt ? Array(t.shape.dropFirst()) : t.shape }

        // Dimensions.
        var seqLen: Int?
        var heads: Int?
        var q: Int?
        if let a = arrays["attn"] {
            let s = inner(a)
            heads = s[0]
            if m.tril {
                let found = try Self.packedTriangleSide(s[1], path: path)
                seqLen = found
                q = found
            } else {
                q = s[1]
                seqLen = s[2]
            }
        }
        if let c = arrays["attn_colsum"] {
            let s = inner(c)
            try Self.unify(&heads, s[0], "attn_colsum", path) { "has \(s[0]) heads, attn has \($0)" }
            try Self.unify(&seqLen, s[1], "attn_colsum", path) { "has length \(s[1]), attn has T = \($0)" }
        }
        var kvHeads: Int?
        var headDim: Int?
        for role in ["k", "v"] {
            if let k = arrays[role] {
                let s = inner(k)
                try Self.unify(&seqLen, s[1], role, path) { "has T = \(s[1]), expected \($0)" }
                try Self.unify(&kvHeads, s[0], role, path) { "has \(s[0]) KV heads, expected \($0)" }
                headDim = s[2]
            }
        }
        if let qq = arrays["q"] {
            let s = inner(qq)
            try Self.unify(&heads, s[0], "q", path) { "has \(s[0]) heads, expected \($0)" }
            try Self.unify(&headDim, s[2], "q", path) { "has head dim \(s[2]), keys have \($0)" }
            try Self.unify(&q, s[1], "q", path) { "has \(s[1]) rows, attn has \($0)" }
        }
        guard let T = seqLen, let H = heads else { throw TraceError(file: path, "cannot tell the sequence length from the arrays") }
        let Q = q ?? 0
        let D = headDim ?? 0
        let sideModel = sidecar?.model
        let givenMap = m.kvMap ?? sideModel?.kvHeadOfQueryHead
        if let g = givenMap {
            let (src, what) = m.kvMap != nil ? (path, "--kv-map") : (sidecarURL.path, "model.kv_head_of_query_head")
            guard g.count == H else { throw TraceError(file: src, "\(what) has \(g.count) entries, expected H = \(H)") }
            if let bad = g.first(where: { $0 < 0 || $0 >= H }) {
                throw TraceError(file: src, "\(what) holds \(bad), outside 0 ..< \(H) (H)")
            }
        }
        let KVH = kvHeads ?? givenMap.map { ($0.max() ?? 0) + 1 } ?? H
        let kvMap = givenMap ?? TraceShape.defaultGQAMap(queryHeads: H, kvHeads: KVH)
        let prefill = m.prefillLen ?? sidecar?.prefillLen ?? T
        let qStart = m.queryStart ?? sidecar?.queryRows?.start ?? (T - Q)
        guard qStart >= 0, qStart <= T - Q else {
            let (src, what) =
                m.queryStart == nil && sidecar?.queryRows?.start != nil ? (sidecarURL.path, "query_rows.start") : (path, "--query-start")
            throw TraceError(file: src, "\(what) \(qStart) with \(Q) rows runs past T = \(T)")
        }

        // Modality and images.
        var modality = [Modality](repeating: .text, count: T)
        var images: [ImageSpan] = []
        func spansOf(_ ranges: [Range<Int>], ids: [Int]? = nil) {
            for r in ranges where r.lowerBound >= 0 && r.upperBound <= T { for p in r { modality[p] = .image } }
            images = ranges.enumerated().map {
                ImageSpan(id: ids?[$0.offset] ?? $0.offset, positions: $0.element, grid: m.grid ?? GridSize.guess($0.element.count))
            }
        }
        func checkLength(_ t: Tensor, _ flag: String) throws {
            guard t.count == T else { throw TraceError(file: path, tensor: flag, "has \(t.count) entries, expected T = \(T)") }
        }
        // Without an image flag or sidecar modality, a member named token_kind or modality serves.
        var tokenKindName = m.tokenKind, modalityName = m.modality
        let imageFlagGiven = m.tokenKind != nil || m.modality != nil || m.imageSpans != nil || m.placeholders != nil
        if !imageFlagGiven, sidecar?.tokenModality == nil {
            let kind = try conventional("token_kind"), mod = try conventional("token_modality")
            if let kind, let mod {
                throw TraceError(
                    file: path, "the file holds both \(kind) and \(mod): name the image tokens with --token-kind or --modality")
            }
            tokenKindName = kind
            modalityName = mod
        }
        func imageMember(_ name: String, role: String, flag: String) -> Member {
            Member(role: role, name: name, origin: imageFlagGiven ? .flag : .conventionalName, flag: flag)
        }
        if let name = tokenKindName {
            guard let t = try resolve(name, role: "token_kind", flagName: "--token-kind") else {
                throw TraceError(file: path, "--token-kind \(name): no such array")
            }
            members[members.count - 1] = imageMember(name, role: "token_kind", flag: "--token-kind")
            try checkLength(t, name)
            let kinds = try t.checkedInts(in: 0 ... T, field: "\(name.escapedForMessage) (--token-kind)", file: path)
            let ranges = try Self.imageRanges(tokenKinds: kinds, name: name, path: path)
            // Kind k ≥ 1 is image k − 1: image ids start at 0, as in trace.json.
            spansOf(ranges.keys.sorted().map { ranges[$0]! }, ids: ranges.keys.sorted().map { $0 - 1 })
        } else if let name = modalityName {
            guard let t = try resolve(name, role: "token_modality", flagName: "--modality") else {
                throw TraceError(file: path, "--modality \(name): no such array")
            }
            members[members.count - 1] = imageMember(name, role: "token_modality", flag: "--modality")
            try checkLength(t, name)
            let codes = try t.checkedInts(in: 0 ... 3, field: "\(name.escapedForMessage) (--modality)", file: path)
            for (p, c) in codes.enumerated() {
                guard let mm = Modality(rawValue: UInt8(clamping: c)), c >= 0, c <= 3 else {
                    throw TraceError(file: path, tensor: name, "modality code \(c) at position \(p) is outside 0–3")
                }
                modality[p] = t.dtype == .bool ? (c != 0 ? .image : .text) : mm
            }
            images = Self.imageRuns(modality).enumerated().map {
                ImageSpan(id: $0.offset, positions: $0.element, grid: m.grid ?? GridSize.guess($0.element.count))
            }
        } else if let spans = m.imageSpans {
            for r in spans where r.lowerBound < 0 || r.upperBound > T || r.isEmpty {
                throw TraceError(file: path, "--image-spans \(r.lowerBound):\(r.upperBound) is outside 0 … \(T) or empty")
            }
            spansOf(spans)
        } else if let ph = m.placeholders {
            let n = m.tokensPerImage ?? 576
            guard n <= T else { throw TraceError(file: path, "--tokens-per-image \(n) is more than T = \(T)") }
            let ranges = try ph.enumerated().map { i, p -> Range<Int> in
                // p + (N−1)·i, checked: every span must end by T.
                let shift = try Checked.multiply(n - 1, i, field: "--placeholders", file: path)
                let a = try Checked.add(p, shift, field: "--placeholders", file: path)
                guard a <= T - n else {
                    throw TraceError(file: path, "--placeholders: image \(i) at \(p) + \(n - 1)·\(i) runs past T = \(T)")
                }
                return a ..< a + n
            }
            spansOf(ranges)
        } else if let sc = sidecar, let mod = sc.tokenModality {
            guard mod.count == T else {
                throw TraceError(file: sidecarURL.path, "token_modality has \(mod.count) entries, expected T = \(T)")
            }
            modality = try mod.enumerated().map { p, c in
                guard c >= 0, c <= 3, let mm = Modality(rawValue: UInt8(c)) else {
                    throw TraceError(file: sidecarURL.path, "token_modality[\(p)]: \(c) is not a code 0–3")
                }
                return mm
            }
            if let imgs = sc.images {
                images = try imgs.enumerated().map {
                    try TraceMetadata.span($0.element, path: "images[\($0.offset)]", id: nil, file: sidecarURL.path)
                }
            }
        }

        let shape = TraceShape(
            layers: numLayers, queryHeads: H, kvHeads: KVH, headDim: D, seqLen: T, prefillLen: prefill,
            queryRows: qStart ..< qStart + Q, kvHeadOfQueryHead: kvMap)
        var hasher = FNV64()
        hasher.add(path.split(separator: "/").last.map(String.init) ?? path)
        for role in Self.roles { if let t = arrays[role] { hasher.add(role + t.shape.shapeText + t.dtype.rawValue) } }
        hasher.add(String(files.first?.1 ?? 0))
        let info = TraceInfo(
            name: url.deletingPathExtension().lastPathComponent,
            modelName: sideModel?.name ?? url.deletingPathExtension().lastPathComponent,
            shape: shape, modality: modality, images: images,
            recordedLayers: lay == .lhqt ? Array(0 ..< numLayers) : [m.layer ?? 0],
            attnScale: sideModel?.attnScale,
            causal: sidecar?.causal ?? true, contentHash: hasher.hex)
        try TraceMetadata.validate(info, file: path)
        guard kvMap.count == H else { throw TraceError(file: path, "--kv-map has \(kvMap.count) entries, expected H = \(H)") }
        self.info = info
        self.arrays = arrays
        self.members = members
        self.layout = lay
        self.tril = m.tril
        // Only for one layer of [H, Q, T] attention, with the prefill and query rows resolved alike.
        if lay != .lhqt, let g = gathered, g.prefill == prefill, qStart == 0, g.prefill <= Q {
            self.attentionColumnSums = g
        } else {
            self.attentionColumnSums = nil
        }
        self.files = files
        self.warnings = warnings
        if !m.tril { _ = try layer(info.recordedLayers[0]) }
    }

    /// The layout (given, or inferred from each array's rank) and the number of layers: the
    /// leading axis of LHQT arrays (equal across them), else `--layer` + 1.
    private static func layout(_ arrays: [String: Tensor], mapping m: BareArrayMapping, path: String) throws -> (
        BareArrayMapping.Layout, Int
    ) {
        let baseRank: [String: Int] = ["attn": m.tril ? 2 : 3, "attn_colsum": 2, "q": 3, "k": 3, "v": 3]
        var layout = m.layout
        for role in Self.roles {
            guard let t = arrays[role] else { continue }
            let r0 = baseRank[role]!
            let inferred: BareArrayMapping.Layout
            if t.rank == r0 {
                inferred = .hqt
            } else if t.rank == r0 + 1 {
                inferred = .lhqt
            } else {
                throw TraceError(
                    file: path, tensor: role,
                    "rank \(t.rank) (shape \(t.shape.shapeText)) fits neither layout: expected rank \(r0) or \(r0 + 1)")
            }
            if let l = layout, l != inferred {
                throw TraceError(file: path, tensor: role, "shape \(t.shape.shapeText) does not fit layout \(l.rawValue)")
            }
            layout = inferred
        }
        let lay = layout ?? .hqt
        var numLayers = lay == .lhqt ? -1 : try Checked.add(m.layer ?? 0, 1, field: "--layer", file: path)
        if lay == .lhqt {
            for role in Self.roles {
                if let t = arrays[role] {
                    if numLayers >= 0, t.shape[0] != numLayers {
                        throw TraceError(file: path, tensor: role, "has \(t.shape[0]) layers, another array has \(numLayers)")
                    }
                    numLayers = t.shape[0]
                }
            }
        }
        guard numLayers >= 1 else { throw TraceError(file: path, "the arrays hold no layers") }
        return (lay, numLayers)
    }

    /// Sets `dim` to `found`, the size array `role` gives it; when another array already set it to a
    /// different size, the error names `role` and says `conflict(earlier size)`.
    private static func unify(_ dim: inout Int?, _ found: Int, _ role: String, _ path: String, _ conflict: (Int) -> String) throws {
        if let d = dim, d != found { throw TraceError(file: path, tensor: role, conflict(d)) }
        dim = found
    }

    /// `T` with `T(T+1)/2 = n`, the side of a packed lower triangle of `n` entries (`--tril`).
    private static func packedTriangleSide(_ n: Int, path: String) throws -> Int {
        let t = Int((2 * Double(n)).squareRoot().rounded(.down)) + 1
        // T(T+1)/2 = n has T ≈ √(2n); try the few integers there, without overflow.
        var c = t
        while c >= 0, c >= t - 3 {
            let (tt, o) = c.multipliedReportingOverflow(by: c + 1)
            if !o, tt / 2 == n, tt % 2 == 0 { return c }
            c -= 1
        }
        throw TraceError(file: path, tensor: "attn", "--tril: last dimension \(n) is not T(T+1)/2 for any T")
    }

    /// The span of each image kind `k ≥ 1` of a `--token-kind` array (0 is text), keyed by `k`;
    /// a negative kind or an image whose tokens are not contiguous is an error naming the array.
    private static func imageRanges(tokenKinds kinds: [Int], name: String, path: String) throws -> [Int: Range<Int>] {
        var ranges: [Int: Range<Int>] = [:]
        for (p, k) in kinds.enumerated() where k != 0 {
            guard k > 0 else { throw TraceError(file: path, tensor: name, "token kind \(k) at position \(p) is negative") }
            if let r = ranges[k] {
                guard r.upperBound == p else {
                    throw TraceError(file: path, tensor: name, "tokens of image \(k) are not contiguous (position \(p))")
                }
                ranges[k] = r.lowerBound ..< p + 1
            } else {
                ranges[k] = p ..< p + 1
            }
        }
        return ranges
    }

    /// The maximal runs of `.image` positions, in order.
    private static func imageRuns(_ modality: [Modality]) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var p = 0
        while p < modality.count {
            if modality[p] == .image {
                var e = p
                while e < modality.count, modality[e] == .image { e += 1 }
                ranges.append(p ..< e)
                p = e
            } else {
                p += 1
            }
        }
        return ranges
    }

    public func layer(_ index: Int) throws -> LayerTensors {
        guard info.recordedLayers.contains(index) else {
            throw TraceError(file: file, layer: index, "layer \(index) is not in the arrays (layers: \(info.recordedLayers.rangesText))")
        }
        func pick(_ role: String) -> Tensor? {
            guard let t = arrays[role] else { return nil }
            return layout == .lhqt ? t.slice(index) : t
        }
        var attn = pick("attn")
        if tril, let packed = attn { attn = try Self.unpackTril(packed, seqLen: info.shape.seqLen, file: file) }
        var t = LayerTensors(
            layer: index, file: file, attention: attn, colsum: pick("attn_colsum"), queries: pick("q"),
            keys: pick("k"), values: pick("v"))
        t.attentionColumnSums = attentionColumnSums
        try LayerValidation.check(t, info: info)
        return t
    }

    /// Expands a packed lower triangle `[H, T(T+1)/2]` into `[H, T, T]` (same dtype, zeros above the diagonal).
    static func unpackTril(_ packed: Tensor, seqLen T: Int, file: String) throws -> Tensor {
        let H = packed.shape[0]
        let w = packed.dtype.width
        let bytes = try Checked.bytes([H, T, T], width: w, field: "--tril: the unpacked attention [H, T, T]", file: file)
        let out = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 16)
        out.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        let src = packed.storage.base + packed.offset
        let perHead = T * (T + 1) / 2
        for h in 0 ..< H {
            for i in 0 ..< T {
                (out + ((h * T + i) * T) * w).copyMemory(from: src + (h * perHead + i * (i + 1) / 2) * w, byteCount: (i + 1) * w)
            }
        }
        return Tensor(
            dtype: packed.dtype, shape: [H, T, T], storage: .owning(out, count: bytes, name: packed.storage.name),
            offset: 0, byteSwapped: packed.byteSwapped)
    }
}

/// Gathers the column sums of a stored float32 `[H, Q, T]` attention member while the archive
/// checks its CRC-32 (`NPZArchive.array(_:visiting:)`): one part per head, read `rowsPerStep`
/// rows at a time, and each step's rows below the prefill length `P` added to the head's sums by
/// `ck_colsum_f32` while they are in cache. The rows of a head are added in ascending order by
/// one thread, so the sums are bit for bit those of `LayerContext.colsum`. `P` is the given
/// prefill length or `T`; the query rows must start at 0 (the given start, or `T − Q`).
final class ColumnSumGatherer: @unchecked Sendable {
    // @unchecked: each head's sums are written only by the thread that visits that head's part.
    let prefill: Int?
    let queryStart: Int?
    private(set) var sums: AttentionColumnSums?
    private var buffer: UnsafeMutablePointer<Double>?
    private var planned = (heads: 0, prefill: 0)

    init(prefill: Int?, queryStart: Int?) {
        self.prefill = prefill
        self.queryStart = queryStart
    }

    deinit { buffer?.deallocate() }

    /// About 256 KiB of rows a step: in L2 while they are summed.
    static let stepBytes = 256 << 10

    func plan(for t: Tensor) -> NPZArchive.MemberVisit? {
        guard t.dtype == .f32, !t.byteSwapped, t.rank == 3, buffer == nil else { return nil }
        let H = t.shape[0], Q = t.shape[1], T = t.shape[2]
        let P = prefill ?? T
        guard H > 0, T > 0, P > 0, P <= T, P <= Q, (queryStart ?? (T - Q)) == 0 else { return nil }
        let rowBytes = T * 4, headBytes = Q * rowBytes
        let rowsPerStep = Swift.max(1, Self.stepBytes / rowBytes)
        let out = UnsafeMutablePointer<Double>.allocate(capacity: H * P)
        out.initialize(repeating: 0, count: H * P)
        buffer = out
        planned = (H, P)
        let box = UnsafeSendableBox((out, t.storage.base + t.offset))
        return NPZArchive.MemberVisit(cuts: (1 ..< H).map { $0 * headBytes }, step: rowsPerStep * rowBytes) { h, offset, count in
            let row0 = (offset - h * headBytes) / rowBytes, rows = count / rowBytes
            let n = Swift.min(rows, P - row0)
            if n > 0 { ck_colsum_f32(box.value.1 + offset, n, T, P, box.value.0 + h * P) }
        }
    }

    /// Keeps the sums: called once the member was visited and its CRC matched.
    func finish() {
        guard let b = buffer else { return }
        sums = AttentionColumnSums(prefill: planned.prefill, values: Array(UnsafeBufferPointer(start: b, count: planned.heads * planned.prefill)))
    }
}

/// Opens any supported trace: an attn-trace folder or single file, or bare arrays with a mapping.
public enum TraceLoader {
    public static func open(_ path: String, mapping: BareArrayMapping = .init()) throws -> any TraceSource {
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TraceError(file: path, "no such file or folder")
        }
        if isDir.boolValue {
            if mapping.isSet {
                throw TraceError(
                    file: path, "mapping flags (--attn, --keys, …) apply to bare .npy/.npz/.safetensors files, not to an attn-trace folder")
            }
            return try AttnTrace(url)
        }
        if url.pathExtension.lowercased() == "safetensors", !mapping.isSet {
            let st = try SafeTensorsFile(url)
            if st.metadata["attn-trace"] != nil { return try AttnTrace(url) }
        }
        return try BareTrace(url, mapping: mapping)
    }
}
