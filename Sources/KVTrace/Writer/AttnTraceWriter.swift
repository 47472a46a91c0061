import Foundation

/// Writes an attn-trace v1 folder (docs/trace-format.md#attn-trace-v1) layer by layer: each layer file is written
/// atomically as soon as it is given, and `trace.json` is written last by `finish()`, so a folder
/// without `trace.json` is an unfinished trace. Output bytes depend only on the inputs.
public struct AttnTraceWriter {
    public let folder: URL
    public var info: TraceInfo
    public private(set) var layerFiles: [String] = []

    public init(folder: URL, info: TraceInfo) throws {
        self.folder = folder
        self.info = info
        try TraceMetadata.validate(info, file: folder.appendingPathComponent("trace.json").path)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    /// The file name of layer `i`.
    public static func fileName(layer i: Int) -> String {
        "layer_" + String(repeating: "0", count: max(0, 3 - String(i).count)) + String(i) + ".safetensors"
    }

    /// Writes one layer's tensors (names from attn-trace v1: `attn`, `attn_colsum`, `q`, `k`, `v`, `k_norm`, `v_norm`).
    public mutating func write(layer i: Int, tensors: [TensorData]) throws {
        let name = Self.fileName(layer: i)
        try SafeTensorsWriter.write(tensors, metadata: ["layer": String(i)], to: folder.appendingPathComponent(name))
        layerFiles.append(name)
    }

    /// Writes `trace.json`. `extra` adds keys (provenance, generator settings, …).
    public mutating func finish(extra: [String: Any] = [:]) throws {
        info.recordedLayers = layerFiles.compactMap { Int($0.dropFirst(6).prefix(3)) }
        let object = TraceMetadata.object(for: info, layerFiles: layerFiles, extra: extra)
        try AtomicFile.write(TraceMetadata.encode(object), to: folder.appendingPathComponent("trace.json"))
    }

    /// Writes a whole small trace as one `.safetensors` file (the single-file variant).
    public static func writeSingleFile(info: TraceInfo, layers: [Int: [TensorData]], to url: URL, extra: [String: Any] = [:]) throws {
        try TraceMetadata.validate(info, file: url.path)
        var all: [TensorData] = []
        for l in layers.keys.sorted() {
            for var t in layers[l]! {
                t.name = "layers.\(l).\(t.name)"
                all.append(t)
            }
        }
        let json = String(decoding: try TraceMetadata.encode(TraceMetadata.object(for: info, layerFiles: nil, extra: extra)), as: UTF8.self)
        try SafeTensorsWriter.write(all, metadata: ["attn-trace": json], to: url)
    }
}
