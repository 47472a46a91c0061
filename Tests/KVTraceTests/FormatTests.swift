import Foundation
import CZlib
import Testing
@testable import KVTrace

@Suite("npy and npz readers")
struct NumpyTests {
    @Test("every dtype of a numpy-written npz reads back its values", arguments: ["stored.npz", "deflated.npz"])
    func npzValues(file: String) throws {
        let z = try NPZArchive(Paths.fixtures.appendingPathComponent(file), options: .init(bf16: true))
        let f16 = try z.array("f16")
        #expect(f16.dtype == .f16 && f16.shape == [2, 3, 4])
        #expect(f16.doubles() == (0 ..< 24).map(fixtureFloat))
        let f32 = try z.array("f32")
        #expect(f32.dtype == .f32 && f32.floats() == (0 ..< 24).map { Float(fixtureFloat($0)) })
        #expect(try z.array("f64").doubles() == (0 ..< 5).map(fixtureFloat))
        let be = try z.array("f32be")
        #expect(be.byteSwapped && be.doubles() == (0 ..< 6).map(fixtureFloat))
        #expect(try z.array("i32").ints() == (0 ..< 4).map(fixtureInt))
        #expect(try z.array("i64").ints() == (0 ..< 4).map(fixtureInt))
        let mask = try z.array("mask")
        #expect(mask.dtype == .bool && mask.ints() == (0 ..< 6).map { $0 % 3 == 0 ? 1 : 0 })
        #expect(try z.array("u8").ints() == Array(0 ..< 6))
        let s = try z.array("scalar")
        #expect(s.shape == [] && s.count == 1 && s.double(at: 0) == 2.5)
        let bf = try z.array("bf16")
        #expect(bf.dtype == .bf16 && bf.doubles() == (0 ..< 6).map(fixtureFloat))
    }

    @Test("ISA-L's CRC-32 equals zlib's, for every length and alignment, and continues from a seed")
    func crcMatchesZlib() {
        var x: UInt32 = 88_172_645
        let bytes = (0 ..< 70_000).map { _ -> UInt8 in
            x ^= x << 13; x ^= x >> 17; x ^= x << 5; return UInt8(truncatingIfNeeded: x)
        }
        bytes.withUnsafeBytes { raw in
            let p = raw.baseAddress!
            for (start, n) in [(0, 0), (0, 1), (3, 15), (1, 16), (5, 63), (0, 64), (7, 4097), (13, 69_987)] {
                let z = UInt32(CZlib.crc32(0, p.assumingMemoryBound(to: Bytef.self) + start, uInt(n)))
                #expect(zipCRC32(p + start, count: n) == z, "\(start) +\(n)")
                let cut = n / 3
                #expect(zipCRC32(p + start + cut, count: n - cut, seed: zipCRC32(p + start, count: cut)) == z)
            }
        }
    }

    @Test(
        "a large member's CRC-32, read from the mapping in parallel parts and combined, equals zlib's one pass",
        arguments: [false, true])
    func parallelCRC(dropPages: Bool) throws {
        let n = 40 << 20 | 12_345  // over the 16 MiB split threshold, not a multiple of the part size
        var bytes = [UInt8](repeating: 0, count: n)
        var x: UInt32 = 2_463_534_242
        for i in 0 ..< n { x ^= x << 13; x ^= x >> 17; x ^= x << 5; bytes[i] = UInt8(truncatingIfNeeded: x) }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("crc-\(UUID().uuidString)")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let mapped = try ByteStorage.map(url)
        for start in [0, 7] {
            let zlib = bytes[start...].withUnsafeBytes {
                UInt32(CZlib.crc32(0, $0.baseAddress!.assumingMemoryBound(to: Bytef.self), uInt($0.count)))
            }
            #expect(zipCRC32(parallel: mapped.base + start, count: n - start, dropPages: dropPages) == zlib)
            // Pages unmapped after checking read back the same bytes (from the page cache).
            #expect(zipCRC32(parallel: mapped.base + start, count: n - start, dropPages: false) == zlib)
        }
        #expect(mapped.base.load(fromByteOffset: n - 1, as: UInt8.self) == bytes[n - 1])
    }

    @Test("a corrupted byte in a large stored member is refused with one line naming the member")
    func corruptLargeStoredMember() throws {
        // One stored member of 24 MiB (checked in parts), its CRC-32 recorded by zlib.
        let count = 6 << 20
        let npy = [UInt8](NPYWriter.encode(TensorData(name: "a", floats: (0 ..< count).map { Float($0 % 977) }, shape: [count])))
        var (zip, data) = Self.storedZip(name: "a.npy", member: npy)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("crc-\(UUID().uuidString).npz")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(zip).write(to: url)
        let a = try NPZArchive(url).array("a")
        #expect(a.count == count && a.double(at: count - 1) == Double((count - 1) % 977))
        zip[data + npy.count - 12_345] ^= 0x40
        try Data(zip).write(to: url)
        do {
            _ = try NPZArchive(url).array("a")
            Issue.record("a corrupted member was read")
        } catch let e as TraceError {
            #expect(e.description.contains("a.npy") && e.description.contains("CRC-32 mismatch"), "\(e)")
            #expect(!e.description.contains("\n"))
        }
    }

    @Test("a stored float32 attention's column sums, gathered while its CRC-32 is checked, equal the row-by-row Double sums")
    func columnSumsDuringTheCRCCheck() throws {
        // 3 heads of 300 × 300: 218 rows a step, so steps do not divide a head; P = 250 < Q.
        let H = 3, T = 300, P = 250
        var x: UInt32 = 1_234_567
        let attn = (0 ..< H * T * T).map { _ -> Float in
            x ^= x << 13; x ^= x >> 17; x ^= x << 5
            // Many binades, so that another order of the additions would round differently.
            return Float(x >> 8) * Float(sign: .plus, exponent: Int(x % 40) - 60, significand: 1)
        }
        let npy = [UInt8](NPYWriter.encode(TensorData(name: "attn", floats: attn, shape: [H, T, T])))
        var (zip, data) = Self.storedZip(name: "attn.npy", member: npy)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sums-\(UUID().uuidString).npz")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(zip).write(to: url)
        var m = BareArrayMapping()
        m.attn = "attn"
        m.prefillLen = P
        let sums = try #require(try BareTrace(url, mapping: m).layer(0).attentionColumnSums)
        var expected = [Double](repeating: 0, count: H * P)
        for h in 0 ..< H { for i in 0 ..< P { for j in 0 ..< P { expected[h * P + j] += Double(attn[(h * T + i) * T + j]) } } }
        #expect(sums.prefill == P && sums.values.map(\.bitPattern) == expected.map(\.bitPattern))
        var backwards = [Double](repeating: 0, count: H * P)
        for h in 0 ..< H { for i in (0 ..< P).reversed() { for j in 0 ..< P { backwards[h * P + j] += Double(attn[(h * T + i) * T + j]) } } }
        #expect(backwards != expected)
        // Without --prefill-len, P = T: every row and column.
        m.prefillLen = nil
        let all = try #require(try BareTrace(url, mapping: m).layer(0).attentionColumnSums)
        #expect(all.prefill == T && all.values.count == H * T)
        #expect((0 ..< T).allSatisfy { j in all.values[j] == (0 ..< T).reduce(0.0) { $0 + Double(attn[$1 * T + j]) } })
        // A corrupted byte in the last head is still refused, naming the member.
        zip[data + npy.count - 4_321] ^= 0x10
        try Data(zip).write(to: url)
        do {
            _ = try BareTrace(url, mapping: m)
            Issue.record("a corrupted member was read")
        } catch let e as TraceError {
            #expect(e.description.contains("attn.npy") && e.description.contains("CRC-32 mismatch"), "\(e)")
        }
    }

    @Test("the CRC-32 of a range cut at given offsets, each part visited step by step, equals zlib's one pass")
    func crcWithCutsAndVisits() throws {
        let n = 3 << 20 | 777
        var bytes = [UInt8](repeating: 0, count: n)
        var x: UInt32 = 97_531
        for i in 0 ..< n { x ^= x << 13; x ^= x >> 17; x ^= x << 5; bytes[i] = UInt8(truncatingIfNeeded: x) }
        let zlib = bytes.withUnsafeBytes { UInt32(CZlib.crc32(0, $0.baseAddress!.assumingMemoryBound(to: Bytef.self), uInt($0.count))) }
        let seen = Locked<[Int: [(Int, Int)]]>([:])
        let crc = bytes.withUnsafeBytes { raw in
            zipCRC32(parallel: raw.baseAddress!, count: n, cuts: [10, 10, 1 << 20, 2 << 20 | 5], dropPages: false, step: 65_537) {
                part, offset, count in seen.withLock { $0[part, default: []].append((offset, count)) }
            }
        }
        #expect(crc == zlib)
        let bounds = [0, 10, 10, 1 << 20, 2 << 20 | 5, n]
        seen.withLock { s in
            for part in 0 ..< 5 {
                // Each part's steps in order, contiguous, covering exactly its bytes, none larger than the step.
                let steps = s[part] ?? []
                var at = bounds[part]
                for (o, c) in steps { #expect(o == at && c <= 65_537 && c > 0); at += c }
                #expect(at == bounds[part + 1], "part \(part)")
            }
        }
    }

    /// A zip of one stored member (local header, data, central directory, end record), its CRC-32
    /// computed by zlib; returns the bytes and the member's data offset.
    static func storedZip(name: String, member: [UInt8]) -> ([UInt8], Int) {
        func le(_ v: Int, _ n: Int) -> [UInt8] { (0 ..< n).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        let crc = member.withUnsafeBytes { Int(CZlib.crc32(0, $0.baseAddress!.assumingMemoryBound(to: Bytef.self), uInt($0.count))) }
        let nameBytes = Array(name.utf8)
        let common =
            le(0, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(crc, 4) + le(member.count, 4) + le(member.count, 4) + le(nameBytes.count, 2)
            + le(0, 2)
        let local = le(0x0403_4B50, 4) + le(20, 2) + common + nameBytes
        let central = le(0x0201_4B50, 4) + le(20, 2) + le(20, 2) + common + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(0, 4) + nameBytes
        let cdOffset = local.count + member.count
        let end = le(0x0605_4B50, 4) + le(0, 2) + le(0, 2) + le(1, 2) + le(1, 2) + le(central.count, 4) + le(cdOffset, 4) + le(0, 2)
        return (local + member + central + end, local.count)
    }

    @Test func voidArraysNeedTheBF16Flag() throws {
        let z = try NPZArchive(Paths.fixtures.appendingPathComponent("stored.npz"))
        #expect(throws: TraceError.self) { try z.array("bf16") }
        do { _ = try z.array("bf16") } catch let e as TraceError { #expect(e.message.contains("--dtype bf16")) }
    }

    @Test func npyVersionsAndBool() throws {
        let v2 = try NPY.read(Paths.fixtures.appendingPathComponent("v2.npy"))
        #expect(v2.shape == [2, 3, 4] && v2.floats() == (0 ..< 24).map { Float(fixtureFloat($0)) })
        let b = try NPY.read(Paths.fixtures.appendingPathComponent("bool.npy"))
        #expect(b.ints() == [1, 0, 0, 1, 0, 0])
        let h = try NPY.read(Paths.fixtures.appendingPathComponent("f16.npy"))
        #expect(h.doubles() == (0 ..< 24).map(fixtureFloat))
    }

    @Test func npyWriterRoundTrips() throws {
        let dir = Paths.tempDir()
        for dtype in [DType.f16, .bf16, .f32, .f64] {
            let vals: [Float] = [0.5, -1.25, 3, 1e-3]
            let url = dir.appendingPathComponent("x-\(dtype.rawValue).npy")
            try NPYWriter.write(TensorData(name: "x", floats: vals, shape: [2, 2], as: dtype), to: url)
            let t = try NPY.read(url, options: .init(bf16: dtype == .bf16))
            #expect(t.dtype == dtype && t.shape == [2, 2])
            for (a, b) in zip(t.floats(), vals) { #expect(abs(a - b) <= abs(b) * 0.01) }
        }
        let ints = dir.appendingPathComponent("i.npy")
        try NPYWriter.write(TensorData(name: "i", ints: [7, -3, 9], shape: [3], as: .i64), to: ints)
        #expect(try NPY.read(ints).ints() == [7, -3, 9])
    }

    @Test func dictLiteralAcceptsAnyKeyOrder() throws {
        var p = DictLiteralParser(text: "{'shape': (3,), 'fortran_order': False, 'descr': '<f4', }   ", file: "x")
        let d = try p.parse()
        #expect(d["shape"] == .tuple([3]) && d["descr"] == .string("<f4") && d["fortran_order"] == .bool(false))
        var q = DictLiteralParser(text: "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", file: "x")
        #expect(try q.parse()["shape"] == .tuple([]))
    }
}

@Suite("safetensors and attn-trace")
struct SafeTensorsTests {
    @Test("every safetensors dtype round-trips with its values", arguments: [DType.f16, .bf16, .f32, .f64])
    func floatDTypes(dtype: DType) throws {
        let dir = Paths.tempDir()
        let vals: [Float] = [1, -2, 0.5, 0.25, 1024, -0.125]
        let url = dir.appendingPathComponent("a.safetensors")
        try SafeTensorsWriter.write(
            [
                TensorData(name: "x", floats: vals, shape: [2, 3], as: dtype),
                TensorData(name: "i32", ints: [1, -2, 3], shape: [3], as: .i32),
                TensorData(name: "i64", ints: [Int(Int32.max) + 5, -7], shape: [2], as: .i64),
                TensorData(name: "b", ints: [1, 0, 1, 1], shape: [4], as: .bool),
            ], metadata: ["k": "v"], to: url)
        let st = try SafeTensorsFile(url)
        #expect(st.metadata == ["k": "v"])
        #expect(st.tensors["x"]!.dtype == dtype && st.tensors["x"]!.floats() == vals)
        #expect(st.tensors["i32"]!.ints() == [1, -2, 3])
        #expect(st.tensors["i64"]!.ints() == [Int(Int32.max) + 5, -7])
        #expect(st.tensors["b"]!.dtype == .bool && st.tensors["b"]!.ints() == [1, 0, 1, 1])
        #expect(st.warnings.isEmpty)
        let raw = try Data(contentsOf: url)
        let n = raw.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect((8 + Int(n)) % 8 == 0, "data starts 8-aligned like the reference writer")
    }

    @Test(
        "a streamed write has encode's bytes, in parts of whole rows, each part zeroed; a failing fill leaves the old file",
        arguments: [16, 40, 4 << 20])
    func streamedWriteMatchesEncode(partBytes: Int) throws {
        let slots = [
            SafeTensorsWriter.Slot(name: "a", dtype: .f32, shape: [3, 5]),
            SafeTensorsWriter.Slot(name: "empty", dtype: .i64, shape: [0]),
            SafeTensorsWriter.Slot(name: "b", dtype: .i64, shape: [2, 2]),
            SafeTensorsWriter.Slot(name: "none", dtype: .f32, shape: [4, 0]),
            SafeTensorsWriter.Slot(name: "c", dtype: .u8, shape: [7]),
            SafeTensorsWriter.Slot(name: "s", dtype: .f64, shape: []),
        ]
        var calls: [(slot: Int, rows: Range<Int>, zero: Bool)] = []
        // Writes every other byte of each part (by its place in the tensor), so the rest must be the
        // zeros the contract promises, also where the reused buffer held an earlier part's bytes.
        func fill(_ i: Int, _ rows: Range<Int>, _ raw: UnsafeMutableRawBufferPointer) throws {
            calls.append((i, rows, raw.allSatisfy { $0 == 0 }))
            let rowBytes = slots[i].byteCount / Swift.max(slots[i].rows, 1)
            #expect(raw.count == rows.count * rowBytes)
            for j in stride(from: 0, to: raw.count, by: 2) {
                raw[j] = UInt8(truncatingIfNeeded: 31 &* i &+ rows.lowerBound &* rowBytes &+ j &+ 1)
            }
        }
        let expected = try SafeTensorsWriter.encode(slots, metadata: ["m": "1"], fill: fill)
        #expect(calls.map(\.rows) == [0 ..< 3, 0 ..< 0, 0 ..< 2, 0 ..< 4, 0 ..< 7, 0 ..< 1])
        let dir = Paths.tempDir()
        let url = dir.appendingPathComponent("s.safetensors")
        calls = []
        try SafeTensorsWriter.write(slots, metadata: ["m": "1"], to: url, partBytes: partBytes, fill: fill)
        #expect(try Data(contentsOf: url) == expected)
        #expect(calls.allSatisfy { $0.zero }, "every part starts zeroed")
        // The parts of each slot cover its rows once, in order, each at most partBytes (or one row).
        for (i, t) in slots.enumerated() {
            let parts = calls.filter { $0.slot == i }.map(\.rows)
            #expect(parts.first?.lowerBound == 0 && parts.last?.upperBound == t.rows, "\(t.name): \(parts)")
            #expect(zip(parts, parts.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "\(t.name): \(parts)")
            let rowBytes = t.byteCount / Swift.max(t.rows, 1)
            #expect(parts.allSatisfy { $0.count <= 1 || $0.count * rowBytes <= partBytes }, "\(t.name): \(parts)")
        }
        if partBytes == 16 { #expect(calls.filter { $0.slot == 0 }.count == 3, "one row of a (20 bytes) a part") }
        #expect(try SafeTensorsFile(url).tensors["b"]!.ints().count == 4)
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try SafeTensorsWriter.write(slots, to: url, partBytes: partBytes) { i, _, _ in if i == 2 { throw Stop() } }
        }
        #expect(try Data(contentsOf: url) == expected, "the old file is untouched")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["s.safetensors"], "no temporary file left")
    }

    @Test func folderTraceReadsValuesLayerByLayer() throws {
        let tiny = TestTrace.known()
        let dir = try tiny.writeFolder(Paths.tempDir())
        let trace = try TraceLoader.open(dir.path)
        let info = trace.info
        #expect(info.recordedLayers == [0, 1])
        #expect(info.shape.queryHeads == 4 && info.shape.kvHeads == 2 && info.shape.kvHeadOfQueryHead == [0, 0, 1, 1])
        #expect(info.images.count == 1 && info.images[0].positions == 3 ..< 7 && info.images[0].grid == GridSize(rows: 2, cols: 2))
        #expect(info.modality[3] == .image && info.modality[2] == .text)
        #expect(info.extras["notes"] == "tiny test trace")
        let l1 = try trace.layer(1)
        let k = l1.keys!.doubles()
        // k[g=1, t=5, d=3] of layer 1, rounded to float16 like the file.
        #expect(k[(1 * tiny.T + 5) * tiny.D + 3] == Double(Float16(TestTrace.knownKey(1, 1, 5, 3))))
        let a = l1.attention!.doubles()
        #expect(a[(2 * tiny.T + 3) * tiny.T + 2] == Double(Float16(Float(0.25))))
        let ins = LayerInspection(l1, info: info)
        #expect(ins.errors.isEmpty && ins.warnings.isEmpty)
        #expect(ins.maxAboveDiagonal == 0)
        #expect(ins.maxColsumError! < 5e-3)
    }

    @Test func singleFileVariantMatchesTheFolder() throws {
        let tiny = TestTrace.known()
        let url = Paths.tempDir().appendingPathComponent("tiny.safetensors")
        try AttnTraceWriter.writeSingleFile(info: tiny.info, layers: [0: tiny.tensorData(layer: 0), 1: tiny.tensorData(layer: 1)], to: url)
        let single = try TraceLoader.open(url.path)
        let folder = try TraceLoader.open(try tiny.writeFolder(Paths.tempDir()).path)
        #expect(single.info.recordedLayers == [0, 1])
        #expect(single.info.images == folder.info.images)
        #expect(try single.layer(1).keys!.doubles() == folder.layer(1).keys!.doubles())
        #expect(try single.layer(0).attention!.doubles() == folder.layer(0).attention!.doubles())
    }

    @Test func writerIsDeterministic() throws {
        let tiny = TestTrace.known()
        let a = try tiny.writeFolder(Paths.tempDir()), b = try tiny.writeFolder(Paths.tempDir())
        for f in ["trace.json", "layer_000.safetensors", "layer_001.safetensors"] {
            #expect(try Data(contentsOf: a.appendingPathComponent(f)) == Data(contentsOf: b.appendingPathComponent(f)))
        }
    }

    @Test func inspectionFindsBrokenRowsAndMask() throws {
        let tiny = TestTrace.known(layers: 1)
        let dir = Paths.tempDir()
        var w = try AttnTraceWriter(folder: dir, info: tiny.info)
        var t = tiny.tensorData(layer: 0, dtype: .f32)
        var a = tiny.layers[0].attention!.floats()
        a[0 * tiny.T + 5] = 0.5  // above the diagonal on row 0, row sum 1.5
        t[0] = TensorData(name: "attn", floats: a, shape: [tiny.H, tiny.T, tiny.T], as: .f32)
        try w.write(layer: 0, tensors: t)
        try w.finish()
        let trace = try AttnTrace(dir)
        let ins = LayerInspection(try trace.layer(0), info: trace.info)
        #expect(ins.maxAboveDiagonal == 0.5)
        #expect(abs(ins.maxRowSumError! - 0.5) < 1e-6)
        #expect(ins.warnings.count == 3, "row sums, causal mask and colsum mismatch: \(ins.warnings)")
    }
}

@Suite("bare arrays")
struct BareArrayTests {
    @Test func lhqtSafetensorsWithMapping() throws {
        let tiny = TestTrace.known(layers: 3)
        let url = Paths.tempDir().appendingPathComponent("bare.safetensors")
        var attn = [Float](), keys = [Float]()
        for l in 0 ..< 3 {
            attn += tiny.layers[0].attention!.floats()
            keys += tiny.tensorData(layer: l, dtype: .f32)[3].data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        try SafeTensorsWriter.write(
            [
                TensorData(name: "A", floats: attn, shape: [3, tiny.H, tiny.T, tiny.T], as: .f32),
                TensorData(name: "K", floats: keys, shape: [3, tiny.KVH, tiny.T, tiny.D], as: .f32),
            ], to: url)
        var m = BareArrayMapping()
        m.attn = "A"
        m.keys = "K"
        m.prefillLen = 9
        m.imageSpans = [2 ..< 6]
        let trace = try TraceLoader.open(url.path, mapping: m)
        #expect(trace.info.recordedLayers == [0, 1, 2])
        #expect(trace.info.shape.kvHeads == 2 && trace.info.shape.kvHeadOfQueryHead == [0, 0, 1, 1])
        #expect(trace.info.shape.prefillLen == 9 && trace.info.images[0].grid == GridSize(rows: 2, cols: 2))
        let k2 = try trace.layer(2).keys!.floats()
        #expect(k2[(1 * tiny.T + 4) * tiny.D + 2] == TestTrace.knownKey(2, 1, 4, 2))
    }

    @Test func packedLowerTriangleUnpacks() throws {
        let T = 5, H = 2
        var packed = [Float]()
        for h in 0 ..< H { for i in 0 ..< T { for j in 0 ... i { packed.append(Float(h * 100 + i * 10 + j)) } } }
        let url = Paths.tempDir().appendingPathComponent("tri.npy")
        try NPYWriter.write(TensorData(name: "x", floats: packed, shape: [H, T * (T + 1) / 2], as: .f32), to: url)
        var m = BareArrayMapping()
        m.tril = true
        let trace = try TraceLoader.open(url.path, mapping: m)
        let a = try trace.layer(0).attention!
        #expect(a.shape == [H, T, T])
        let v = a.floats()
        #expect(v[(1 * T + 3) * T + 2] == 132 && v[(1 * T + 3) * T + 4] == 0 && v[(0 * T + 4) * T + 4] == 44)
    }

    @Test func placeholdersFollowTheLookMRule() throws {
        let tiny = TestTrace.known(layers: 1, heads: 2, kvHeads: 2, dim: 4, seqLen: 40, prefill: 40, images: [])
        let url = Paths.tempDir().appendingPathComponent("p.npy")
        try NPYWriter.write(TensorData(name: "a", floats: tiny.layers[0].attention!.floats(), shape: [2, 40, 40], as: .f16), to: url)
        var m = BareArrayMapping()
        m.placeholders = [3, 10]
        m.tokensPerImage = 9
        let info = try TraceLoader.open(url.path, mapping: m).info
        #expect(info.images.map(\.positions) == [3 ..< 12, 18 ..< 27])
        #expect(info.images[1].grid == GridSize(rows: 3, cols: 3))
    }

    @Test func sidecarSuppliesMetadata() throws {
        let tiny = TestTrace.known(layers: 1, heads: 2, kvHeads: 1, dim: 4, seqLen: 8, prefill: 6, images: [])
        let dir = Paths.tempDir()
        try NPYWriter.write(
            TensorData(name: "a", floats: tiny.layers[0].attention!.floats(), shape: [2, 8, 8], as: .f32),
            to: dir.appendingPathComponent("x.npy"))
        let side: [String: Any] = [
            "prefill_len": 6, "token_modality": [0, 1, 1, 1, 1, 0, 0, 0],
            "images": [["image_id": 4, "start": 1, "stop": 5, "grid": [2, 2]]],
            "model": ["name": "side-model", "kv_head_of_query_head": [0, 0]],
        ]
        try JSONSerialization.data(withJSONObject: side).write(to: dir.appendingPathComponent("x.trace.json"))
        let info = try TraceLoader.open(dir.appendingPathComponent("x.npy").path).info
        #expect(info.modelName == "side-model" && info.shape.prefillLen == 6 && info.shape.kvHeads == 1)
        #expect(info.images.first?.id == 4 && info.modality[1] == .image)
    }
}

@Suite("shared real traces and fixtures", .enabled(if: Paths.sharedExists, "needs ../shared (the design data) beside the project"))
struct SharedDataTests {
    @Test func pseudoImageTrace() throws {
        let t = try TraceLoader.open(Paths.shared.appendingPathComponent("traces/smollm2-pseudoimg2x64-full").path)
        let s = t.info.shape
        #expect(s.layers == 30 && s.queryHeads == 9 && s.kvHeads == 3 && s.headDim == 64 && s.seqLen == 188 && s.prefillLen == 180)
        #expect(t.info.images.map(\.positions) == [37 ..< 101, 105 ..< 169])
        #expect(t.info.images.allSatisfy { $0.grid == GridSize(rows: 8, cols: 8) && $0.isPseudo })
        #expect(t.info.syntheticImageTokens)
        let l = try t.layer(29)
        #expect(l.attention?.shape == [9, 188, 188] && l.keys == nil)
        let ins = LayerInspection(l, info: t.info)
        #expect(ins.errors.isEmpty && ins.maxRowSumError! < 1e-3 && ins.maxAboveDiagonal == 0)
    }

    @Test func chatTraceQKReproducesAttention() throws {
        let t = try TraceLoader.open(Paths.shared.appendingPathComponent("traces/smollm2-chat-full").path)
        let s = t.info.shape
        #expect(s.seqLen == 111 && s.prefillLen == 47 && s.queryRows == 0 ..< 111)
        let l = try t.layer(7)
        let q = l.queries!.doubles(), k = l.keys!.doubles(), a = l.attention!.doubles()
        // Row 60 of head 4 recomputed as softmax(scale · q·kᵀ) under the causal mask.
        let h = 4, g = s.kvHeadOfQueryHead[h], i = 60, D = s.headDim, T = s.seqLen
        var logits = (0 ... i).map { j in
            (0 ..< D).reduce(0.0) { $0 + q[(h * T + i) * D + $1] * k[(g * T + j) * D + $1] } * t.info.attnScale
        }
        let mx = logits.max()!
        logits = logits.map { exp($0 - mx) }
        let z = logits.reduce(0, +)
        for j in 0 ... i { #expect(abs(logits[j] / z - a[(h * T + i) * T + j]) < 3e-3) }
    }

    @Test(
        "oracle fixtures load with mapping flags",
        arguments: [
            ("s1_text_heavy", 160, [40 ..< 64, 94 ..< 118]),
            ("s2_text_light", 200, [20 ..< 68, 74 ..< 122, 128 ..< 176]),
            ("s4_rounding", 97, [17 ..< 33, 53 ..< 69]),
        ])
    func oracleFixture(name: String, length: Int, spans: [Range<Int>]) throws {
        var m = BareArrayMapping()
        m.attn = "in_attention"; m.keys = "in_keys"; m.values = "in_values"; m.queries = "in_queries"; m.tokenKind = "in_token_kind"
        let url = Paths.shared.appendingPathComponent("fixtures/lookm-oracle/\(name).npz")
        let t = try TraceLoader.open(url.path, mapping: m)
        #expect(t.info.shape.seqLen == length && t.info.shape.headDim == 128 && t.info.shape.kvHeads == t.info.shape.queryHeads)
        #expect(t.info.images.map(\.positions) == spans)
        let z = try NPZArchive(url)
        #expect(try z.array("in_image_spans").ints() == spans.flatMap { [$0.lowerBound, $0.upperBound] })
        let l = try t.layer(0)
        #expect(l.attention!.shape == [t.info.shape.queryHeads, length, length])
    }
}
