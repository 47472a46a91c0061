import Foundation
import KVTrace

/// Runs the built `kvscope` binary and captures its output.
public enum CLI {
    public static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    public static let shared = repo.deletingLastPathComponent().appendingPathComponent("shared")
    public static var sharedExists: Bool { FileManager.default.fileExists(atPath: shared.appendingPathComponent("traces").path) }

    /// A built product of the package (`kvscope`, an example): beside the test bundle, or in the
    /// repository's debug build; nil when it is not built.
    public static func product(_ name: String) -> URL? {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for dir in [here, here.deletingLastPathComponent(), repo.appendingPathComponent(".build/debug")] {
            let u = dir.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return nil
    }

    public static var binary: URL { product("kvscope") ?? repo.appendingPathComponent(".build/debug/kvscope") }

    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs `kvscope` (or `executable`) with `args` and captures its output.
    public static func run(_ args: [String], env: [String: String] = [:], cwd: URL? = nil, executable: URL? = nil) throws -> Result {
        let p = Process()
        p.executableURL = executable ?? binary
        p.arguments = args
        if let cwd { p.currentDirectoryURL = cwd }
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env { e[k] = v }
        p.environment = e
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let r = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: r, as: UTF8.self))
    }

    public static func tempDir() -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-cli-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    /// A small valid trace: 2 layers, 4 heads over 2 KV heads, 10 tokens, one 2×2 image.
    public static func smallTrace() throws -> URL {
        let T = 10, H = 4, KVH = 2, D = 4
        var modality = [Modality](repeating: .text, count: T)
        for p in 2 ..< 6 { modality[p] = .image }
        let info = TraceInfo(name: "small", modelName: "m", shape: TraceShape(layers: 2, queryHeads: H, kvHeads: KVH, headDim: D, seqLen: T,
                             prefillLen: 8, queryRows: 0 ..< T, kvHeadOfQueryHead: [0, 0, 1, 1]), modality: modality,
                             images: [ImageSpan(id: 0, positions: 2 ..< 6)], recordedLayers: [])
        let dir = tempDir().appendingPathComponent("small")
        var w = try AttnTraceWriter(folder: dir, info: info)
        var a = [Float](repeating: 0, count: H * T * T)
        for h in 0 ..< H { for i in 0 ..< T { for j in 0 ... i { a[(h * T + i) * T + j] = 1 / Float(i + 1) } } }
        for l in 0 ..< 2 {
            try w.write(layer: l, tensors: [TensorData(name: "attn", floats: a, shape: [H, T, T], as: .f16),
                                            TensorData(name: "k", floats: [Float](repeating: 0.5, count: KVH * T * D), shape: [KVH, T, D], as: .f16)])
        }
        try w.finish()
        return dir
    }
}

