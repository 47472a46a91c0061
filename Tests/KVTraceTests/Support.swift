import Foundation
import KVTrace

/// Paths and small builders shared by the KVTrace tests.
enum Paths {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let shared = repo.deletingLastPathComponent().appendingPathComponent("shared")
    static var sharedExists: Bool { FileManager.default.fileExists(atPath: shared.appendingPathComponent("traces").path) }

    static func tempDir(_ tag: String = "kvtrace") -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}

/// The value make_fixtures.py stores at flat index i of a float array.
func fixtureFloat(_ i: Int) -> Double { Double(i % 7) * 0.25 - 0.5 }
/// The value make_fixtures.py stores at flat index i of an int array.
func fixtureInt(_ i: Int) -> Int { i * 3 - 5 }

/// A tiny causal trace with known contents: T tokens, H heads, KVH KV heads, D dims.
/// Attention rows are uniform over the visible prefix, so row i holds 1/(i+1).
struct TinyTrace {
    var layers = 2, H = 4, KVH = 2, D = 8, T = 12, P = 10
    var images: [ImageSpan] = [ImageSpan(id: 0, positions: 3 ..< 7, grid: GridSize(rows: 2, cols: 2))]

    var info: TraceInfo {
        var modality = [Modality](repeating: .text, count: T)
        for img in images { for p in img.positions { modality[p] = .image } }
        let shape = TraceShape(layers: layers, queryHeads: H, kvHeads: KVH, headDim: D, seqLen: T, prefillLen: P,
                               queryRows: 0 ..< T, kvHeadOfQueryHead: TraceShape.defaultGQAMap(queryHeads: H, kvHeads: KVH))
        return TraceInfo(name: "tiny", modelName: "tiny-model", shape: shape, modality: modality, images: images, recordedLayers: [])
    }

    func attention() -> [Float] {
        var a = [Float](repeating: 0, count: H * T * T)
        for h in 0 ..< H { for i in 0 ..< T { for j in 0 ... i { a[(h * T + i) * T + j] = 1 / Float(i + 1) } } }
        return a
    }

    func colsum() -> [Float] {
        var c = [Float](repeating: 0, count: H * T)
        for h in 0 ..< H { for j in 0 ..< P { for i in j ..< P { c[h * T + j] += 1 / Float(i + 1) } } }
        return c
    }

    /// Key element value for (layer, kv head, position, dim).
    static func key(_ l: Int, _ g: Int, _ t: Int, _ d: Int) -> Float { Float(l) + Float(g) * 0.5 + Float(t) * 0.01 - Float(d) * 0.125 }

    func tensors(layer l: Int, dtype: DType = .f16) -> [TensorData] {
        var k = [Float](), v = [Float]()
        for g in 0 ..< KVH { for t in 0 ..< T { for d in 0 ..< D { k.append(Self.key(l, g, t, d)); v.append(-Self.key(l, g, t, d)) } } }
        let q = (0 ..< H * T * D).map { Float($0 % 5) * 0.5 }
        return [
            TensorData(name: "attn", floats: attention(), shape: [H, T, T], as: dtype),
            TensorData(name: "attn_colsum", floats: colsum(), shape: [H, T], as: .f32),
            TensorData(name: "q", floats: q, shape: [H, T, D], as: dtype),
            TensorData(name: "k", floats: k, shape: [KVH, T, D], as: dtype),
            TensorData(name: "v", floats: v, shape: [KVH, T, D], as: dtype),
        ]
    }

    @discardableResult
    func writeFolder(_ dir: URL, dtype: DType = .f16) throws -> URL {
        var w = try AttnTraceWriter(folder: dir, info: info)
        for l in 0 ..< layers { try w.write(layer: l, tensors: tensors(layer: l, dtype: dtype)) }
        try w.finish(extra: ["notes": "tiny test trace"])
        return dir
    }
}
