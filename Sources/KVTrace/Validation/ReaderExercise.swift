import Foundation

/// Drives one reader over arbitrary bytes as `kvscope info` would, for the libFuzzer targets in
/// `Fuzz/` and for replaying every input they ever crashed on (the regression tests). Each
/// function never throws: it returns the one-line messages of the errors the reader raised, so a
/// caller can check that hostile input only ever produces such lines.
public enum ReaderExercise {
    /// The targets, by the name used for `Fuzz/<name>.swift` and the regression folders.
    public static let targets = ["npy", "npz", "safetensors", "tracejson", "barearrays"]

    /// Runs target `name` on `data`.
    public static func run(_ name: String, _ data: Data) -> [String] {
        switch name {
        case "npy": return npy(data)
        case "npz": return npz(data)
        case "safetensors": return safetensors(data)
        case "tracejson": return traceJSON(data)
        case "barearrays": return bareArrays(data)
        default: return ["unknown target \(name)"]
        }
    }

    /// The `.npy` reader, plain and with bf16 descr handling.
    public static func npy(_ data: Data) -> [String] {
        var errors: [String] = []
        for bf16 in [false, true] {
            collect(&errors) { touch(try NPY.parse(ByteStorage.copying(data, name: "fuzz.npy"), options: .init(bf16: bf16))) }
        }
        return errors
    }

    /// The `.npz` reader (zip directory, zip64, stored and deflated members, CRC-32), every member.
    public static func npz(_ data: Data) -> [String] {
        var errors: [String] = []
        var archive: NPZArchive?
        collect(&errors) {
            archive = try NPZArchive(storage: ByteStorage.copying(data, name: "fuzz.npz"), url: URL(fileURLWithPath: "fuzz.npz"))
        }
        guard let z = archive else { return errors }
        for k in z.keys.prefix(16) { collect(&errors) { touch(try z.array(k)) } }
        return errors
    }

    /// The `.safetensors` reader, then the file as a trace (single-file attn-trace or bare arrays).
    public static func safetensors(_ data: Data) -> [String] {
        var errors: [String] = []
        collect(&errors) {
            let st = try SafeTensorsFile(storage: ByteStorage.copying(data, name: "fuzz.safetensors"))
            for n in st.names.prefix(16) { if let t = st.tensors[n] { touch(t) } }
        }
        let dir = scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("input.safetensors")
        guard (try? data.write(to: url)) != nil else { return errors }
        var m = BareArrayMapping()
        m.attn = "attn"
        for mapping in [BareArrayMapping(), m] { collect(&errors) { try openAndRead(url.path, mapping: mapping) } }
        return errors
    }

    /// `trace.json` decoding and validation.
    public static func traceJSON(_ data: Data) -> [String] {
        var errors: [String] = []
        collect(&errors) {
            let parsed = try TraceMetadata.parse(data, file: "trace.json")
            _ = parsed.info.modalityRuns
            _ = parsed.info.imageIdOfPosition
        }
        return errors
    }

    /// Bare arrays with a sidecar: byte 0 picks mapping flags; the rest is split at its last
    /// `NUL {` into a `.npy` image and the sidecar `<stem>.trace.json` (no split: no sidecar).
    public static func bareArrays(_ data: Data) -> [String] {
        guard let flags = data.first else { return [] }
        let body = [UInt8](data.dropFirst())
        var split = body.count
        if body.count >= 2 {
            for i in stride(from: body.count - 2, through: 0, by: -1) where body[i] == 0 && body[i + 1] == UInt8(ascii: "{") {
                split = i
                break
            }
        }
        let dir = scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let npy = dir.appendingPathComponent("input.npy")
        guard (try? Data(body[..<split]).write(to: npy)) != nil else { return [] }
        if split < body.count { try? Data(body[(split + 1)...]).write(to: dir.appendingPathComponent("input.trace.json")) }
        var m = BareArrayMapping()
        if flags & 1 != 0 { m.tril = true }
        if flags & 2 != 0 { m.layout = .lhqt }
        if flags & 4 != 0 { m.queryStart = Int(flags >> 4) }
        if flags & 8 != 0 { m.placeholders = [Int(flags >> 4)]; m.tokensPerImage = 2 }
        var errors: [String] = []
        collect(&errors) { try openAndRead(npy.path, mapping: m) }
        return errors
    }

    // MARK: helpers

    static func collect(_ errors: inout [String], _ body: () throws -> Void) {
        do { try body() } catch let e as TraceError { errors.append(e.description) } catch { errors.append("\(error)") }
    }

    /// Reads every element of a (reasonably sized) tensor, so a view past its bytes is caught.
    static func touch(_ t: Tensor) {
        guard t.count > 0, t.count <= 1 << 22 else { return }
        _ = t.firstNonFinite()
        _ = t.double(at: t.count - 1)
    }

    static func openAndRead(_ path: String, mapping: BareArrayMapping) throws {
        let source = try TraceLoader.open(path, mapping: mapping)
        for l in source.info.recordedLayers.prefix(4) {
            let t = try source.layer(l)
            for (_, tensor) in t.named { touch(tensor) }
            _ = LayerInspection(t, info: source.info)
        }
    }

    static func scratch() -> URL {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("kvscope-exercise-\(getpid())-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}
