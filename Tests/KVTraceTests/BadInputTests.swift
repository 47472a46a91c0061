import Foundation
import Testing
@testable import KVTrace

/// One hand-made bad file per validation case of docs/trace-format.md#validation, each checked for the
/// one-line error that names the file and says what is wrong.
@Suite("bad input")
struct BadInputTests {
    static func header(_ json: String, data: Int, declared: Int? = nil) -> Data {
        var j = Data(json.utf8)
        while j.count % 8 != 0 { j.append(0x20) }
        var d = Data()
        withUnsafeBytes(of: UInt64(declared ?? j.count).littleEndian) { d.append(contentsOf: $0) }
        d.append(j)
        d.append(Data(count: data))
        return d
    }

    static func npy(_ dict: String, data: Int, magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59], headerLen: Int? = nil) -> Data {
        var d = Data(magic + [1, 0])
        let text = Data((dict + "\n").utf8)
        withUnsafeBytes(of: UInt16(headerLen ?? text.count).littleEndian) { d.append(contentsOf: $0) }
        d.append(text)
        d.append(Data(count: data))
        return d
    }

    static let safetensorsCases: [(String, Data, String)] = [
        (
            "truncated buffer", header(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: 10),
            "out of range of the 10-byte buffer (truncated file?)"
        ),
        ("header length past the end", header(#"{}"#, data: 0, declared: 4000), "runs past the end of the file"),
        ("header above 100 MB", header(#"{}"#, data: 0, declared: 200_000_000), "above the 100 MB limit"),
        ("header not JSON", header("not json at all", data: 0), "not a JSON object"),
        (
            "duplicate key",
            header(
                #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: 4),
            "duplicate key 'a'"
        ),
        (
            "overlapping tensors",
            header(
                #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: 12),
            "overlaps tensor 'a'"
        ),
        (
            "shape against bytes", header(#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#, data: 20),
            "needs 24 bytes, data_offsets span 20"
        ),
        ("unknown dtype", header(#"{"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}"#, data: 4), "unsupported dtype F8_E4M3"),
        (
            "begin after end", header(#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}"#, data: 8),
            "data_offsets [8, 4] out of range"
        ),
        (
            "overflowing shape",
            header(#"{"a":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,4]}}"#, data: 4), "overflows"
        ),
        ("shorter than the length field", Data([1, 2, 3]), "shorter than the 8-byte"),
    ]

    @Test("safetensors", arguments: safetensorsCases.indices)
    func safetensors(_ i: Int) throws {
        let (name, data, expected) = Self.safetensorsCases[i]
        let url = Paths.tempDir().appendingPathComponent("bad.safetensors")
        try data.write(to: url)
        let e = #expect(throws: TraceError.self, "\(name)") { try SafeTensorsFile(url) }
        #expect(e?.message.contains(expected) == true, "\(name): \(e?.description ?? "")")
        #expect(e?.description.hasPrefix(url.path) == true)
        #expect(e?.description.contains("\n") == false)
    }

    static let npyCases: [(String, Data, String)] = [
        (
            "bad magic", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", data: 8, magic: [0x50, 0x4B, 3, 4, 0, 0]),
            "bad magic"
        ),
        ("truncated data", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", data: 8), "needs 16 bytes, file has 8"),
        (
            "HEADER_LEN past the end", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", data: 0, headerLen: 9000),
            "runs past the end"
        ),
        ("not a dict literal", npy("['descr', '<f4']", data: 0), "not a valid dict literal"),
        ("missing key", npy("{'descr': '<f4', 'shape': (2,), }", data: 8), "exactly descr, fortran_order, shape"),
        (
            "extra key", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': True, }", data: 8),
            "exactly descr, fortran_order, shape"
        ),
        ("pickled objects", npy("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", data: 16), "pickled"),
        ("Fortran order", npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", data: 16), "np.ascontiguousarray"),
        ("complex", npy("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", data: 16), "complex"),
        ("strings", npy("{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }", data: 24), "string type"),
        ("structured", npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", data: 8), "structured"),
        ("overflowing shape", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 8), }", data: 8), "overflows"),
        ("huge declared shape", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 1000), }", data: 8), "truncated"),
        (
            "bad version",
            {
                var d = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", data: 8); d[6] = 9; return d
            }(), "unsupported npy version 9"
        ),
    ]

    @Test("npy", arguments: npyCases.indices)
    func npyFiles(_ i: Int) throws {
        let (name, data, expected) = Self.npyCases[i]
        let url = Paths.tempDir().appendingPathComponent("bad.npy")
        try data.write(to: url)
        let e = #expect(throws: TraceError.self, "\(name)") { try NPY.read(url) }
        #expect(e?.message.contains(expected) == true, "\(name): \(e?.description ?? "")")
        #expect(e?.file == url.path)
    }

    @Test func brokenAndTruncatedZip() throws {
        let dir = Paths.tempDir()
        let garbage = dir.appendingPathComponent("garbage.npz")
        try Data("PK\u{3}\u{4} this is not a zip archive at all".utf8).write(to: garbage)
        let e1 = #expect(throws: TraceError.self) { try NPZArchive(garbage) }
        #expect(e1?.message.contains("not a readable zip archive") == true)
        let whole = try Data(contentsOf: Paths.fixtures.appendingPathComponent("stored.npz"))
        let cut = dir.appendingPathComponent("cut.npz")
        try whole.prefix(whole.count / 2).write(to: cut)
        let e2 = #expect(throws: TraceError.self) { try NPZArchive(cut) }
        #expect(e2?.file == cut.path)
        let missing = #expect(throws: TraceError.self) { try NPZArchive(Paths.fixtures.appendingPathComponent("stored.npz")).array("nope") }
        #expect(missing?.message.contains("no array named 'nope'") == true)
    }

    /// Writes the tiny trace, then lets `edit` break its trace.json or files.
    static func brokenTrace(_ edit: (inout [String: Any], URL) throws -> Void) throws -> URL {
        let dir = try TestTrace.known().writeFolder(Paths.tempDir())
        let jsonURL = dir.appendingPathComponent("trace.json")
        var j = try JSONSerialization.jsonObject(with: Data(contentsOf: jsonURL)) as! [String: Any]
        try edit(&j, dir)
        try JSONSerialization.data(withJSONObject: j).write(to: jsonURL)
        return dir
    }

    static let traceCases: [(String, @Sendable (inout [String: Any], URL) throws -> Void, String)] = [
        ("format", { j, _ in j["format"] = "other" }, "format: expected \"attn-trace\", found \"other\""),
        ("version", { j, _ in j["version"] = 2 }, "version: expected 1, found 2"),
        ("modality length", { j, _ in j["token_modality"] = [0, 0, 0] }, "token_modality has 3 entries, expected seq_len = 12"),
        (
            "modality code",
            { j, _ in
                var m = j["token_modality"] as! [Int]; m[0] = 7; j["token_modality"] = m
            }, "token_modality[0]: 7 is not a code 0–3"
        ),
        ("span past the end", { j, _ in j["images"] = [["image_id": 0, "start": 10, "stop": 14, "grid": [2, 2]]] }, "is outside 0 … 12"),
        ("span over text", { j, _ in j["images"] = [["image_id": 0, "start": 1, "stop": 5, "grid": [2, 2]]] }, "covers text position 1"),
        (
            "grid against span", { j, _ in j["images"] = [["image_id": 0, "start": 3, "stop": 7, "grid": [3, 2]]] },
            "grid 3×2 has 6 patches, span has 4 tokens"
        ),
        (
            "overlapping spans",
            { j, _ in
                var m = j["token_modality"] as! [Int]; m[7] = 1; m[8] = 1; j["token_modality"] = m
                j["images"] = [
                    ["image_id": 0, "start": 3, "stop": 7, "grid": [2, 2]], ["image_id": 1, "start": 5, "stop": 9, "grid": [2, 2]],
                ]
            }, "overlap"
        ),
        (
            "tile outside image",
            { j, _ in
                j["images"] = [
                    ["image_id": 0, "start": 3, "stop": 7, "grid": [2, 2], "tiles": [["start": 5, "stop": 9, "grid": [2, 2]]]]
                ]
            }, "tile of image 0 lies outside"
        ),
        ("prefill length", { j, _ in j["prefill_len"] = 0 }, "prefill_len 0 is outside 1 … 12"),
        ("query rows", { j, _ in j["query_rows"] = ["start": 0, "stop": 20] }, "query_rows {start: 0, stop: 20} is outside 0 … 12"),
        (
            "GQA map length",
            { j, _ in
                var m = j["model"] as! [String: Any]; m["kv_head_of_query_head"] = [0, 1]; j["model"] = m
            }, "kv_head_of_query_head has 2 entries, expected num_heads = 4"
        ),
        (
            "GQA map value",
            { j, _ in
                var m = j["model"] as! [String: Any]; m["kv_head_of_query_head"] = [0, 0, 1, 5]; j["model"] = m
            }, "holds 5, outside 0 ..< 2"
        ),
        (
            "missing layer file", { _, dir in try FileManager.default.removeItem(at: dir.appendingPathComponent("layer_001.safetensors")) },
            "missing: listed in layer_files"
        ),
        (
            "layer index disagrees",
            { _, dir in
                let src = dir.appendingPathComponent("layer_001.safetensors")
                let st = try SafeTensorsFile(src)
                let ts = st.names.map { n in
                    TensorData(
                        name: n, dtype: st.tensors[n]!.dtype, shape: st.tensors[n]!.shape,
                        data: Data(bytes: st.storage.base + st.tensors[n]!.offset, count: st.tensors[n]!.byteCount))
                }
                try SafeTensorsWriter.write(ts, metadata: ["layer": "7"], to: src)
            }, "disagrees with __metadata__ layer 7"
        ),
        (
            "shape against trace.json",
            { j, _ in
                j["seq_len"] = 13; j["token_modality"] = [Int](repeating: 0, count: 13); j["images"] = []
            }, "shape [4, 12, 12] does not match the trace: expected [4, 12, 13]"
        ),
        (
            "KV heads against num_kv_heads",
            { j, _ in
                var m = j["model"] as! [String: Any]; m["num_kv_heads"] = 1; m["kv_head_of_query_head"] = [0, 0, 0, 0]; j["model"] = m
            }, "tensor 'k': shape [2, 12, 8] does not match the trace: expected [1, 12, 8]"
        ),
        ("missing key", { j, _ in j["causal"] = nil }, "causal: missing"),
        (
            "wrong type names the key path",
            { j, _ in
                var m = j["model"] as! [String: Any]; m["num_heads"] = "4"; j["model"] = m
            }, "trace.json: model.num_heads: expected an integer"
        ),
        ("fractional integer", { j, _ in j["seq_len"] = 12.5 }, "seq_len: expected an integer"),
        (
            "nested key path", { j, _ in j["images"] = [["image_id": 0, "start": 3, "stop": 7, "grid": [2, "2"]]] },
            "images[0].grid[1]: expected an integer"
        ),
        (
            "grid product overflows",
            { j, _ in j["images"] = [["image_id": 0, "start": 3, "stop": 7, "grid": [3_037_000_500, 3_037_000_500]]] },
            "images[0].grid: 3037000500 × 3037000500 overflows"
        ),
        (
            "more KV heads than heads",
            { j, _ in
                var m = j["model"] as! [String: Any]; m["num_kv_heads"] = 1 << 62; j["model"] = m
            }, "num_kv_heads 4611686018427387904 is more than num_heads 4"
        ),
    ]

    @Test("trace.json and layer files", arguments: traceCases.indices)
    func traceFolder(_ i: Int) throws {
        let (name, edit, expected) = Self.traceCases[i]
        let dir = try Self.brokenTrace(edit)
        let e = #expect(throws: TraceError.self, "\(name)") { try TraceLoader.open(dir.path) }
        #expect(e?.description.contains(expected) == true, "\(name): \(e?.description ?? "")")
        #expect(e?.file.hasPrefix(dir.path) == true)
    }

    @Test func layerWithoutAttentionOrKeys() throws {
        let tiny = TestTrace.known()
        let dir = Paths.tempDir()
        var w = try AttnTraceWriter(folder: dir, info: tiny.info)
        try w.write(layer: 0, tensors: Array(tiny.tensorData(layer: 0)[4...]))  // only v
        try w.finish()
        let e = #expect(throws: TraceError.self) { try TraceLoader.open(dir.path) }
        #expect(e?.description.contains("layer 0: the layer has none of attn, attn_colsum, or q with k") == true)
    }

    @Test func nanIsFoundByInspection() throws {
        let tiny = TestTrace.known(layers: 1)
        let dir = Paths.tempDir()
        var w = try AttnTraceWriter(folder: dir, info: tiny.info)
        var t = tiny.tensorData(layer: 0)
        var k = [Float](repeating: 1, count: tiny.KVH * tiny.T * tiny.D)
        k[17] = .nan
        t[3] = TensorData(name: "k", floats: k, shape: [tiny.KVH, tiny.T, tiny.D], as: .f16)
        try w.write(layer: 0, tensors: t)
        try w.finish()
        let trace = try TraceLoader.open(dir.path)
        let ins = LayerInspection(try trace.layer(0), info: trace.info)
        #expect(ins.errors == ["tensor 'k' holds NaN or Inf (flat index 17)"])
        #expect(throws: TraceError.self) { try LayerValidation.checkFinite(trace.layer(0)) }
    }

    @Test func bareMappingErrorsNameTheFlag() throws {
        let url = Paths.fixtures.appendingPathComponent("stored.npz")
        var m = BareArrayMapping()
        m.attn = "missing_member"
        let e = #expect(throws: TraceError.self) { try TraceLoader.open(url.path, mapping: m) }
        #expect(e?.message.contains("--attn missing_member: no such array") == true)
        var m2 = BareArrayMapping()
        m2.attn = "i32"
        let e2 = #expect(throws: TraceError.self) { try TraceLoader.open(url.path, mapping: m2) }
        #expect(e2?.description.contains("dtype I32 is not a float type") == true)
        var m3 = BareArrayMapping()
        m3.attn = "f16"
        m3.tokenKind = "i32"
        let e3 = #expect(throws: TraceError.self) { try TraceLoader.open(url.path, mapping: m3) }
        #expect(e3?.description.contains("i32 (--token-kind)[0]: -5 is outside 0 … ") == true)
        let unknown = Paths.tempDir().appendingPathComponent("x.csv")
        try Data("1,2".utf8).write(to: unknown)
        let e4 = #expect(throws: TraceError.self) { try TraceLoader.open(unknown.path) }
        #expect(e4?.message.contains("unknown file type '.csv'") == true)
    }
}
