import Foundation

/// Reader for numpy's `.npz` archives (docs/trace-format.md#npz): a zip of `<key>.npy` members, stored (`np.savez`) or
/// deflated (`np.savez_compressed`), zip64 records included.
///
/// The archive is memory-mapped once and its central directory checked field by field against the
/// file's size (`ZipDirectory`). A **stored** member is read in place: its tensor points into the
/// mapping at the data offset its local header gives, nothing is copied. A **deflated** member is
/// inflated with zlib in two steps: first only the npy header, then (when the header's shape and
/// dtype account for exactly the member's declared size, and that size is under the memory cap)
/// the data, into a buffer of that size; the decoder never reads past the compressed size nor
/// writes past the buffer, and a stream that would go on is refused. The CRC-32 of every member
/// is compared with the central directory's before its tensor is returned (ISA-L's CRC-32,
/// in one part per core for a large member, read straight from the mapping: no copy). A caller
/// may have a stored member's data visited step by step during that check, while it is in cache
/// (`array(_:visiting:)`: the bare-array reader gathers the attention's column sums so).
/// Members are cached.
public final class NPZArchive: Sendable {
    public let url: URL
    /// Member keys (file names without `.npy`), in archive order.
    public let keys: [String]
    public let options: NPY.Options
    private let storage: ByteStorage
    private let entries: [String: ZipDirectory.Entry]
    /// Members read so far; a member is read under the lock, so only once.
    private let cache = Locked<[String: Tensor]>([:])

    public convenience init(_ url: URL, options: NPY.Options = .init()) throws {
        guard FileManager.default.fileExists(atPath: url.path) else { throw TraceError(file: url.path, "no such file") }
        try self.init(storage: ByteStorage.map(url), url: url, options: options)
    }

    /// An archive held in `storage` (a mapping of `url`, or bytes in memory for tests and fuzzing).
    public init(storage: ByteStorage, url: URL, options: NPY.Options = .init()) throws {
        self.url = url
        self.options = options
        self.storage = storage
        let dir = try ZipDirectory(storage)
        var keys: [String] = []
        var entries: [String: ZipDirectory.Entry] = [:]
        for entry in dir.entries where !entry.name.hasSuffix("/") {
            let key = entry.name.hasSuffix(".npy") ? String(entry.name.dropLast(4)) : entry.name
            guard entries[key] == nil else {
                throw TraceError(file: url.path, "members \(key) and \(key).npy both exist")
            }
            keys.append(key)
            entries[key] = entry
        }
        guard !keys.isEmpty else { throw TraceError(file: url.path, "zip archive holds no arrays") }
        self.keys = keys
        self.entries = entries
    }

    /// The array stored under `key` (with or without the `.npy` suffix).
    public func array(_ key: String) throws -> Tensor {
        let key = key.hasSuffix(".npy") ? String(key.dropLast(4)) : key
        return try cache.withLock { cache throws -> Tensor in try arrayLocked(key, &cache) }
    }

    /// `array(_:)` under the cache's lock.
    private func arrayLocked(_ key: String, _ cache: inout [String: Tensor]) throws -> Tensor {
        if let t = cache[key] { return t }
        guard let entry = entries[key] else {
            throw TraceError(file: url.path, "no array named '\(key)' (the archive has \(keys.joined(separator: ", ")))")
        }
        let member = "\(url.path):\(entry.name)".escapedForMessage
        let tensor: Tensor
        switch entry.method {
        case .stored: tensor = try stored(entry, member: member)
        case let .deflated(compressedSize): tensor = try deflated(entry, compressedSize: compressedSize, member: member)
        }
        cache[key] = tensor
        return tensor
    }

    /// How to visit a stored member's data during its CRC check: the data (from its first byte
    /// after the npy header) cut at the ascending byte offsets `cuts` into parts checked in
    /// parallel, each read in steps of at most `step` bytes; `visit(part, offset, count)` sees each
    /// step (offsets from the first data byte) right after its CRC, while it is in cache.
    public struct MemberVisit: Sendable {
        public var cuts: [Int]
        public var step: Int
        public var visit: @Sendable (_ part: Int, _ offset: Int, _ count: Int) -> Void
        public init(cuts: [Int], step: Int, visit: @escaping @Sendable (_ part: Int, _ offset: Int, _ count: Int) -> Void) {
            self.cuts = cuts
            self.step = step
            self.visit = visit
        }
    }

    /// The array under `key`, as `array(_:)` returns it (its CRC-32 checked before it is returned).
    /// When the member is stored in a mapped archive and not read yet, `plan(tensor)` may ask for
    /// a visit of its data during that check (`visited` is then true and every step was visited
    /// once, before the check's verdict: the caller must drop what it gathered when this throws).
    public func array(_ key: String, visiting plan: (Tensor) -> MemberVisit?) throws -> (tensor: Tensor, visited: Bool) {
        let key = key.hasSuffix(".npy") ? String(key.dropLast(4)) : key
        let mapped = storage.isMapped(url.path)
        return try cache.withLock { cache throws -> (tensor: Tensor, visited: Bool) in
            if let t = cache[key] { return (t, false) }
            guard let entry = entries[key], case .stored = entry.method, mapped else { return (try self.arrayLocked(key, &cache), false) }
            let member = "\(url.path):\(entry.name)".escapedForMessage
            let tensor = try NPY.parse(
                storage, at: entry.dataOffset, end: entry.dataOffset + entry.uncompressedSize, name: member, options: options)
            guard let visit = plan(tensor) else { return (try self.arrayLocked(key, &cache), false) }
            let header = tensor.offset - entry.dataOffset
            let crc = zipCRC32(
                parallel: storage.base + entry.dataOffset, count: entry.uncompressedSize,
                cuts: [header] + visit.cuts.map { header + $0 }, dropPages: true, step: visit.step
            ) { part, offset, count in
                if part > 0 { visit.visit(part - 1, offset - header, count) }
            }
            try checkCRC(crc, entry, member: member)
            cache[key] = tensor
            return (tensor, true)
        }
    }

    private func checkCRC(_ found: UInt32, _ entry: ZipDirectory.Entry, member: String) throws {
        guard found == entry.crc32 else {
            throw TraceError(
                file: member, "CRC-32 mismatch: data has \(hex(found)), the archive records \(hex(entry.crc32)) (corrupt member)")
        }
    }

    private func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - s.count) + s
    }

    /// A stored member: the npy image is read in place inside the archive's mapping.
    private func stored(_ entry: ZipDirectory.Entry, member: String) throws -> Tensor {
        let tensor = try NPY.parse(
            storage, at: entry.dataOffset, end: entry.dataOffset + entry.uncompressedSize,
            name: member, options: options)
        let crc = zipCRC32(
            parallel: storage.base + entry.dataOffset, count: entry.uncompressedSize, dropPages: storage.isMapped(url.path))
        try checkCRC(crc, entry, member: member)
        return tensor
    }

    /// A deflated member: header first, then exactly the declared data, under the memory cap.
    private func deflated(_ entry: ZipDirectory.Entry, compressedSize: Int, member: String) throws -> Tensor {
        let inflater = CappedInflater(input: storage.base + entry.dataOffset, count: compressedSize, name: member)
        let size = entry.uncompressedSize
        guard size >= 10 else { throw TraceError(file: member, "truncated: shorter than an npy header (\(size) bytes)") }
        // 1. The fixed preamble (magic, version, HEADER_LEN), then the header text.
        let preamble = min(size, 12)
        var head = [UInt8](repeating: 0, count: preamble)
        try head.withUnsafeMutableBytes { try inflater.fill($0.baseAddress!, count: preamble) }
        guard head[0 ..< 6] == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59] else { throw TraceError(file: member, "not an npy file (bad magic)") }
        let major = head[6]
        guard (1 ... 3).contains(major), size >= (major == 1 ? 10 : 12) else {
            throw TraceError(file: member, "unsupported npy version \(major) (expected 1, 2 or 3)")
        }
        let headerLen =
            major == 1
            ? Int(head[8]) | Int(head[9]) << 8
            : Int(head[8]) | Int(head[9]) << 8 | Int(head[10]) << 16 | Int(head[11]) << 24
        let headerEnd = (major == 1 ? 10 : 12) + min(headerLen, NPY.maxHeaderBytes + 1)
        guard headerEnd <= size else {
            throw TraceError(file: member, "truncated: npy HEADER_LEN \(headerLen) runs past the member's \(size) bytes")
        }
        // A version-1 header shorter than 2 bytes ends inside the 12-byte preamble already read.
        if headerEnd > preamble {
            head += [UInt8](repeating: 0, count: headerEnd - preamble)
            try head.withUnsafeMutableBytes { try inflater.fill($0.baseAddress! + preamble, count: headerEnd - preamble) }
        }
        let headStorage = ByteStorage.copying(Data(head), name: member)
        let header = try NPY.parseHeader(headStorage, at: 0, name: member)
        let dtype = try NPY.decodeDescr(header.descr, options: options, file: member)
        let dataBytes = try Checked.product(header.shape + [dtype.dtype.width], field: "npy shape", file: member)
        let declared = try Checked.add(header.dataOffset, dataBytes, field: "npy header size + data size", file: member)
        guard declared == size else {
            throw TraceError(
                file: member,
                "npy header declares \(declared) bytes (shape \(header.shape.shapeText) of \(dtype.dtype.rawValue)), the archive \(size)")
        }
        guard size <= traceMemoryCap else {
            throw TraceError(
                file: member, "inflating needs \(size) bytes, above the memory cap of \(traceMemoryCap) bytes (KVSCOPE_MEMORY_CAP)")
        }
        // 2. The data, into a buffer of exactly the declared size.
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 16)
        let owned = ByteStorage.owning(buffer, count: size, name: member)
        head.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: headerEnd) }
        try inflater.fill(buffer + headerEnd, count: size - headerEnd)
        try inflater.finish()
        try checkCRC(zipCRC32(parallel: buffer, count: size, dropPages: false), entry, member: member)
        return try NPY.parse(owned, name: member, options: options)
    }

    /// Bytes on disk.
    public var fileBytes: Int { storage.count }
}
