import Foundation

/// An attn-trace v1 trace (docs/trace-format.md#attn-trace-v1): a folder with `trace.json` and one safetensors file
/// per recorded layer, or a single safetensors file whose `__metadata__["attn-trace"]` holds the
/// `trace.json` text and whose tensors are named `layers.<i>.<name>`.
///
/// Opening reads only `trace.json` and the layer files' headers; `layer(_:)` maps one layer file,
/// and the mapping is released when the returned tensors are dropped.
public struct AttnTrace: TraceSource {
    public let info: TraceInfo
    public let root: URL
    public let isSingleFile: Bool
    public let files: [(path: String, bytes: Int)]
    public let warnings: [TraceWarning]
    private let layerFile: [Int: String]
    private let single: SafeTensorsFile?

    static let tensorNames: Set<String> = ["attn", "attn_colsum", "q", "k", "v", "k_norm", "v_norm"]

    public init(_ url: URL) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw TraceError(file: url.path, "no such file or folder")
        }
        root = url
        if isDir.boolValue {
            isSingleFile = false
            single = nil
            let jsonURL = url.appendingPathComponent("trace.json")
            guard let data = FileManager.default.contents(atPath: jsonURL.path) else {
                throw TraceError(file: jsonURL.path, "missing: an attn-trace folder needs trace.json")
            }
            let parsed = try TraceMetadata.parse(data, file: jsonURL.path)
            var info = parsed.info
            let names: [String]
            if let lf = parsed.layerFiles {
                names = lf
            } else {
                names = try FileManager.default.contentsOfDirectory(atPath: url.path)
                    .filter { $0.hasPrefix("layer_") && $0.hasSuffix(".safetensors") }.sorted()
            }
            guard !names.isEmpty else { throw TraceError(file: url.path, "the trace lists no layer files") }
            var map: [Int: String] = [:]
            var files: [(String, Int)] = [(jsonURL.path, data.count)]
            var warnings: [TraceWarning] = []
            var hasher = FNV64()
            hasher.add(data)
            for name in names {
                let path = url.appendingPathComponent(name).path
                guard FileManager.default.fileExists(atPath: path) else {
                    throw TraceError(file: path, "missing: listed in layer_files of trace.json")
                }
                let st = try SafeTensorsFile(URL(fileURLWithPath: path))
                warnings += st.warnings
                let digits = name.dropFirst("layer_".count).prefix { $0.isNumber }
                guard let fromName = Int(digits) else { throw TraceError(file: path, "layer file name must be layer_NNN.safetensors") }
                if let m = st.metadata["layer"] {
                    guard Int(m) == fromName else {
                        throw TraceError(file: path, "layer index \(fromName) in the file name disagrees with __metadata__ layer \(m)")
                    }
                }
                guard fromName >= 0, fromName < info.shape.layers else {
                    throw TraceError(file: path, "layer \(fromName) is outside 0 ..< \(info.shape.layers) (model.num_layers)")
                }
                guard map[fromName] == nil else { throw TraceError(file: path, "layer \(fromName) appears twice") }
                map[fromName] = path
                files.append((path, st.storage.count))
                hasher.add(String(st.storage.count))
                for n in st.names { hasher.add(n + st.tensors[n]!.shape.shapeText) }
                try Self.checkLayer(st.tensors, layer: fromName, file: path, info: info)
            }
            info.recordedLayers = map.keys.sorted()
            info.contentHash = hasher.hex
            self.info = info
            self.layerFile = map
            self.files = files
            self.warnings = warnings
        } else {
            isSingleFile = true
            let st = try SafeTensorsFile(url)
            guard let text = st.metadata["attn-trace"] else {
                throw TraceError(
                    file: url.path,
                    "safetensors file has no __metadata__[\"attn-trace\"]; for bare arrays pass mapping flags such as --attn NAME")
            }
            var info = try TraceMetadata.parse(Data(text.utf8), file: url.path + " (__metadata__ attn-trace)").info
            var layers = Set<Int>()
            for name in st.names {
                let parts = name.split(separator: ".", maxSplits: 2)
                guard parts.count == 3, parts[0] == "layers", let l = Int(parts[1]) else {
                    throw TraceError(file: url.path, tensor: name, "tensor names must be layers.<i>.<name>")
                }
                guard l >= 0, l < info.shape.layers else {
                    throw TraceError(file: url.path, tensor: name, "layer \(l) is outside 0 ..< \(info.shape.layers)")
                }
                layers.insert(l)
            }
            guard !layers.isEmpty else { throw TraceError(file: url.path, "the trace holds no layer tensors") }
            var hasher = FNV64()
            hasher.add(Data(text.utf8))
            for n in st.names { hasher.add(n + st.tensors[n]!.shape.shapeText) }
            info.recordedLayers = layers.sorted()
            info.contentHash = hasher.hex
            self.info = info
            self.single = st
            self.layerFile = [:]
            self.files = [(url.path, st.storage.count)]
            self.warnings = st.warnings
            for l in info.recordedLayers {
                let prefix = "layers.\(l)."
                var named: [String: Tensor] = [:]
                for (n, t) in st.tensors where n.hasPrefix(prefix) { named[String(n.dropFirst(prefix.count))] = t }
                try Self.checkLayer(named, layer: l, file: url.path, info: info)
            }
        }
    }

    static func layerTensors(_ named: [String: Tensor], layer: Int, file: String) -> LayerTensors {
        LayerTensors(
            layer: layer, file: file, attention: named["attn"], colsum: named["attn_colsum"], queries: named["q"],
            keys: named["k"], values: named["v"], keyNorms: named["k_norm"], valueNorms: named["v_norm"])
    }

    /// Header-level check of one layer, run at open so that a bad layer is found before work starts.
    static func checkLayer(_ named: [String: Tensor], layer: Int, file: String, info: TraceInfo) throws {
        try LayerValidation.check(layerTensors(named, layer: layer, file: file), info: info)
    }

    public func layer(_ index: Int) throws -> LayerTensors {
        if let single {
            let prefix = "layers.\(index)."
            guard info.recordedLayers.contains(index) else {
                throw TraceError(
                    file: root.path, layer: index, "layer \(index) is not recorded (recorded: \(info.recordedLayers.rangesText))")
            }
            var named: [String: Tensor] = [:]
            for (n, t) in single.tensors where n.hasPrefix(prefix) { named[String(n.dropFirst(prefix.count))] = t }
            return Self.layerTensors(named, layer: index, file: root.path)
        }
        guard let path = layerFile[index] else {
            throw TraceError(file: root.path, layer: index, "layer \(index) is not recorded (recorded: \(info.recordedLayers.rangesText))")
        }
        let st = try SafeTensorsFile(URL(fileURLWithPath: path))
        let t = Self.layerTensors(st.tensors, layer: index, file: path)
        try LayerValidation.check(t, info: info)
        return t
    }
}

extension Array where Element == Int {
    /// `0-5, 7, 9-11` for sorted layer lists.
    public var rangesText: String {
        var out: [String] = []
        var i = 0
        while i < count {
            var j = i
            while j + 1 < count, self[j + 1] == self[j] + 1 { j += 1 }
            out.append(j > i ? "\(self[i])-\(self[j])" : "\(self[i])")
            i = j + 1
        }
        return out.joined(separator: ", ")
    }
}

/// 64-bit FNV-1a, for content hashes that go into result rows (not for security).
public struct FNV64: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    public init() {}
    public mutating func add(_ data: Data) { for b in data { value = (value ^ UInt64(b)) &* 0x100_0000_01b3 } }
    public mutating func add(_ s: String) { add(Data(s.utf8)) }
    public var hex: String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
