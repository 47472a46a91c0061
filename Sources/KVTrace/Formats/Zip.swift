import CIsal
import CZlib
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The central directory of a zip archive, read from a memory-mapped file with every field checked
/// against the file's real size before it is used (APPNOTE.TXT 6.3: end of central directory,
/// zip64 end record and locator, central file headers, local file headers).
///
/// Only what `.npz` files need is read: methods 0 (stored) and 8 (deflate), no encryption, one
/// disk. Offsets and sizes of 2⁶³ or more, entries that point outside the file or into the central
/// directory, a local header that disagrees with its central entry, and duplicate names are refused
/// with the archive's name and the field at fault.
struct ZipDirectory {
    struct Entry {
        var name: String
        var method: Method
        var crc32: UInt32
        var uncompressedSize: Int
        /// First byte of the member's data (after its local header), checked to lie in the file.
        var dataOffset: Int

        /// How the member's bytes are stored (APPNOTE.TXT 4.4.5). Any other method is refused when
        /// the directory is read, naming the archive and the member.
        enum Method: Equatable {
            /// Method 0: the bytes as they are (compressed size = uncompressed size, checked).
            case stored
            /// Method 8: raw deflate, `compressedSize` bytes from `dataOffset`.
            case deflated(compressedSize: Int)
        }
    }

    let entries: [Entry]

    init(_ s: ByteStorage) throws {
        let file = s.name
        func fail(_ m: String) -> TraceError { TraceError(file: file, "not a readable zip archive: \(m)") }
        func u16(_ o: Int) -> Int { Int(s.loadLE(UInt16.self, at: o)) }
        func u32(_ o: Int) -> UInt32 { s.loadLE(UInt32.self, at: o) }
        func u64(_ o: Int) -> UInt64 { s.loadLE(UInt64.self, at: o) }
        let size = s.count
        guard size >= 22 else { throw fail("shorter than an end-of-central-directory record") }
        // End of central directory: the last signature whose comment ends exactly at the file's end.
        var eocd = -1
        var p = size - 22
        let lowest = max(0, size - 22 - 0xFFFF)
        while p >= lowest {
            if u32(p) == 0x0605_4B50, p + 22 + u16(p + 20) <= size { eocd = p; break }
            p -= 1
        }
        guard eocd >= 0 else { throw fail("no end-of-central-directory record") }
        var count = u16(eocd + 10)
        var cdSize = Int(u32(eocd + 12))
        var cdOffset = Int(u32(eocd + 16))
        let diskFields = [u16(eocd + 4), u16(eocd + 6)]
        let needs64 = count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF
        var cdLimit = eocd
        if needs64 || (eocd >= 20 && u32(eocd - 20) == 0x0706_4B50) {
            guard eocd >= 20, u32(eocd - 20) == 0x0706_4B50 else { throw fail("zip64 fields without a zip64 locator") }
            let recOffset = try Checked.int(u64(eocd - 12), field: "zip64 locator offset", file: file)
            guard recOffset <= eocd - 20 - 56, u32(recOffset) == 0x0606_4B50 else {
                throw fail("zip64 end record offset \(recOffset) does not point at a zip64 end record")
            }
            count = try Checked.int(u64(recOffset + 32), field: "zip64 entry count", file: file)
            cdSize = try Checked.int(u64(recOffset + 40), field: "zip64 central directory size", file: file)
            cdOffset = try Checked.int(u64(recOffset + 48), field: "zip64 central directory offset", file: file)
            cdLimit = recOffset
        } else {
            guard diskFields == [0, 0] else { throw fail("multi-disk archives are not supported") }
        }
        guard cdOffset <= cdLimit, cdSize <= cdLimit - cdOffset else {
            throw fail("central directory [\(cdOffset), +\(cdSize)) runs outside the file (\(size) bytes)")
        }
        guard count <= cdSize / 46 else { throw fail("\(count) entries cannot fit a \(cdSize)-byte central directory") }
        var entries: [Entry] = []
        var names = Set<String>()
        var q = cdOffset
        let cdEnd = cdOffset + cdSize
        for n in 0 ..< count {
            guard cdEnd - q >= 46, u32(q) == 0x0201_4B50 else { throw fail("central entry \(n) is missing or cut") }
            let flags = u16(q + 8)
            let method = u16(q + 10)
            let crc = u32(q + 16)
            var csize = Int(u32(q + 20))
            var usize = Int(u32(q + 24))
            let nameLen = u16(q + 28), extraLen = u16(q + 30), commentLen = u16(q + 32)
            var lho = Int(u32(q + 42))
            let recLen = 46 + nameLen + extraLen + commentLen
            guard recLen <= cdEnd - q else { throw fail("central entry \(n) runs past the central directory") }
            let nameBytes = UnsafeRawBufferPointer(start: s.base + q + 46, count: nameLen)
            let name = String(decoding: nameBytes, as: UTF8.self)
            let member = "\(file):\(name.escapedForMessage)"
            // zip64 extended information: the 64-bit values of the fields that hold 0xFFFFFFFF, in order.
            var e = q + 46 + nameLen
            let extraEnd = e + extraLen
            while extraEnd - e >= 4 {
                let id = u16(e), len = u16(e + 2)
                guard len <= extraEnd - e - 4 else { throw TraceError(file: member, "zip extra field runs past its entry") }
                if id == 0x0001 {
                    var f = e + 4
                    let fEnd = f + len
                    func next(_ field: String) throws -> Int {
                        guard fEnd - f >= 8 else { throw TraceError(file: member, "zip64 extra field lacks \(field)") }
                        defer { f += 8 }
                        return try Checked.int(u64(f), field: "zip64 \(field)", file: member)
                    }
                    if usize == 0xFFFF_FFFF { usize = try next("uncompressed size") }
                    if csize == 0xFFFF_FFFF { csize = try next("compressed size") }
                    if lho == 0xFFFF_FFFF { lho = try next("local header offset") }
                }
                e += 4 + len
            }
            guard flags & 1 == 0 else { throw TraceError(file: member, "member is encrypted") }
            let typed: Entry.Method
            switch method {
            case 0:
                guard csize == usize else {
                    throw TraceError(file: member, "stored member has compressed size \(csize) ≠ uncompressed size \(usize)")
                }
                typed = .stored
            case 8: typed = .deflated(compressedSize: csize)
            default: throw TraceError(file: member, "compression method \(method) is not supported (stored or deflate)")
            }
            // Local header: inside the file, before the central directory, naming the same member.
            guard lho <= cdOffset - 30, u32(lho) == 0x0403_4B50 else {
                throw TraceError(file: member, "local header offset \(lho) does not point at a local header")
            }
            let lName = u16(lho + 26), lExtra = u16(lho + 28)
            let data = lho + 30 + lName + lExtra
            guard data <= cdOffset, csize <= cdOffset - data else {
                throw TraceError(file: member, "data [\(data), +\(csize)) runs into the central directory or past the file")
            }
            guard lName == nameLen, memcmp(s.base + lho + 30, s.base + q + 46, nameLen) == 0 else {
                throw TraceError(file: member, "local header names another member than the central directory")
            }
            guard names.insert(name).inserted else { throw TraceError(file: member, "member appears twice in the archive") }
            entries.append(
                Entry(
                    name: name, method: typed, crc32: crc, uncompressedSize: usize, dataOffset: data))
            q += recLen
        }
        self.entries = entries
    }
}

/// The CRC-32 of the zip format (ISO 3309 polynomial, as zlib's `crc32`) over `count` bytes,
/// continuing from `seed` (0 to start). Intel ISA-L's `crc32_gzip_refl` (the reflected IEEE CRC
/// with zlib's convention: the seed and the result are the CRC values themselves, the inversions
/// are inside): carry-less-multiply folding, 512 bits at a time with VPCLMULQDQ where the CPU has
/// AVX-512, chosen at run time; the values are zlib's.
func zipCRC32(_ p: UnsafeRawPointer, count: Int, seed: UInt32 = 0) -> UInt32 {
    count == 0 ? seed : crc32_gzip_refl(seed, p.assumingMemoryBound(to: UInt8.self), UInt64(count))
}

/// The CRC-32 of bytes that were cut into consecutive parts, from each part's CRC and length
/// (zlib's `crc32_combine`): the same value as one pass over the whole.
func zipCRC32Combine(_ parts: [(crc: UInt32, count: Int)]) -> UInt32 {
    guard var crc = parts.first.map({ UInt($0.crc) }) else { return 0 }
    for part in parts.dropFirst() { crc = CZlib.crc32_combine(crc, UInt(part.crc), off_t(part.count)) }
    return UInt32(truncatingIfNeeded: crc)
}

/// The CRC-32 of `count` bytes at `p`: a range of 16 MiB or more is cut into one part per core,
/// checked in parallel and put together with `zipCRC32Combine`.
///
/// When `p` lies in a read-only file mapping (`dropPages`), each part is read in 4 MiB steps and
/// the pages of a step are unmapped from the process again (`madvise(MADV_DONTNEED)`: they stay
/// in the page cache), so checking a large member costs no copy (unlike `pread`) and does not
/// leave the whole member in the process's resident memory.
func zipCRC32(parallel p: UnsafeRawPointer, count: Int, dropPages: Bool) -> UInt32 {
    let parts = Swift.max(1, Swift.min(ProcessInfo.processInfo.activeProcessorCount, count / (8 << 20)))
    let size = (count + parts - 1) / parts
    return zipCRC32(parallel: p, count: count, cuts: (1 ..< parts).map { $0 * size }, dropPages: dropPages, step: 4 << 20, visit: nil)
}

/// Visits the bytes of one part of a CRC pass, a step at a time: `(part, offset from the start of
/// the range, bytes)`, called right after the step's CRC, while its bytes are in cache.
typealias CRCVisitor = @Sendable (_ part: Int, _ offset: Int, _ count: Int) -> Void

/// The CRC-32 of `count` bytes at `p`, cut at the ascending offsets `cuts` into parts that are
/// checked in parallel (then combined with `zipCRC32Combine`); each part is read in steps of at
/// most `step` bytes, and `visit`, when given, sees each step right after its CRC. With
/// `dropPages` (`p` in a read-only file mapping) the whole pages read are unmapped again every
/// 4 MiB or so (see `zipCRC32(parallel:count:dropPages:)`).
func zipCRC32(
    parallel p: UnsafeRawPointer, count: Int, cuts: [Int], dropPages: Bool, step: Int, visit: CRCVisitor?
) -> UInt32 {
    let bounds = [0] + cuts + [count]
    precondition(zip(bounds, bounds.dropFirst()).allSatisfy { $0 <= $1 }, "CRC cuts out of order")
    let parts = bounds.count - 1
    var crcs = [(crc: UInt32, count: Int)](repeating: (0, 0), count: parts)
    crcs.withUnsafeMutableBufferPointer { out in
        let box = UnsafeSendableBox((p, out.baseAddress!))
        parallelFor(parts) { i in
            let start = bounds[i], n = bounds[i + 1] - start
            let crc = crcOfMappedPart(box.value.0 + start, count: n, dropPages: dropPages, step: step) { offset, m in
                visit?(i, start + offset, m)
            }
            box.value.1[i] = (crc, n)
        }
    }
    return zipCRC32Combine(crcs)
}

private func crcOfMappedPart(
    _ p: UnsafeRawPointer, count: Int, dropPages: Bool, step: Int, visit: (_ offset: Int, _ count: Int) -> Void
) -> UInt32 {
    let dropEvery = 4 << 20
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    var crc: UInt32 = 0
    var done = 0, kept = 0
    while done < count {
        let n = Swift.min(Swift.max(step, 1), count - done)
        crc = zipCRC32(p + done, count: n, seed: crc)
        visit(done, n)
        done += n
        // Whole pages read since the last drop only: a page shared with a neighbouring part stays mapped.
        if dropPages, done - kept >= dropEvery || done == count {
            let lo = (Int(bitPattern: p + kept) + page - 1) / page * page
            let hi = (Int(bitPattern: p + done)) / page * page
            if hi > lo { _ = madvise(UnsafeMutableRawPointer(bitPattern: lo), hi - lo, Int32(MADV_DONTNEED)) }
            kept = done
        }
    }
    return crc
}

/// A raw-deflate decoder (zlib) reading at most `compressedSize` bytes of input and writing at most
/// the room it is given: it cannot loop at the end of the input, run past its member, or produce
/// more than asked.
final class CappedInflater {
    /// Heap-allocated: zlib keeps a pointer back to its stream, so the stream must not move.
    private let strm = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    private var stream: z_stream {
        get { strm.pointee }
        _modify { yield &strm.pointee }
    }
    private let input: UnsafeRawPointer
    private var inputLeft: Int
    private let name: String
    private(set) var finished = false

    private let initStatus: Int32

    init(input: UnsafeRawPointer, count: Int, name: String) {
        self.input = input
        self.inputLeft = count
        self.name = name
        strm.initialize(to: z_stream())
        initStatus = inflateInit2_(strm, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        strm.pointee.next_in = UnsafeMutablePointer(mutating: input.assumingMemoryBound(to: Bytef.self))
    }

    deinit {
        if initStatus == Z_OK { inflateEnd(strm) }
        strm.deallocate()
    }

    /// Fills `out[0 ..< count]` completely, or throws when the stream ends early, is corrupt, or the
    /// input runs out without a final block.
    func fill(_ out: UnsafeMutableRawPointer, count: Int) throws {
        guard initStatus == Z_OK else { throw TraceError(file: name, "cannot start inflating (zlib error \(initStatus))") }
        var written = 0
        while written < count {
            if stream.avail_in == 0 {
                guard inputLeft > 0 else {
                    throw TraceError(file: name, "deflate stream ends without its final block after \(written) of \(count) bytes")
                }
                let n = min(inputLeft, 1 << 30)
                stream.avail_in = uInt(n)
                inputLeft -= n
            }
            guard !finished else { throw TraceError(file: name, "member inflates to fewer bytes than its header declares") }
            let room = min(count - written, 1 << 30)
            stream.next_out = (out + written).assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(room)
            let rc = inflate(strm, Z_NO_FLUSH)
            written += room - Int(stream.avail_out)
            switch rc {
            case Z_OK: continue
            case Z_STREAM_END: finished = true
            case Z_BUF_ERROR where stream.avail_in == 0 && inputLeft == 0:
                throw TraceError(file: name, "deflate stream ends without its final block after \(written) of \(count) bytes")
            default:
                throw TraceError(file: name, "corrupt deflate data (zlib: \(stream.msg.map { String(cString: $0) } ?? "error \(rc)"))")
            }
        }
    }

    /// After the last `fill`, the stream must end exactly there: a member that inflates further is refused.
    func finish() throws {
        if finished { return }
        var spare: UInt8 = 0
        try withUnsafeMutablePointer(to: &spare) { p in
            if stream.avail_in == 0, inputLeft > 0 {
                let n = min(inputLeft, 1 << 30)
                stream.avail_in = uInt(n)
                inputLeft -= n
            }
            stream.next_out = p
            stream.avail_out = 1
            let rc = inflate(strm, Z_NO_FLUSH)
            if rc == Z_STREAM_END, stream.avail_out == 1 { finished = true; return }
            if stream.avail_out == 0 { throw TraceError(file: name, "member inflates past the size its header declares") }
            if rc == Z_BUF_ERROR, stream.avail_in == 0, inputLeft == 0 {
                throw TraceError(file: name, "deflate stream ends without its final block")
            }
            throw TraceError(file: name, "deflate stream does not end where its header says the data ends")
        }
    }
}

extension String {
    /// The string with control characters (newline, tab, escape, …) written as `\n`, `\t`, `\u{1B}`,
    /// so that a name taken from a file can never split or recolour a one-line message.
    public var escapedForMessage: String {
        guard unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == "\u{2028}" || $0 == "\u{2029}" }) else {
            return self
        }
        var out = ""
        for u in unicodeScalars {
            switch u {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.properties.generalCategory == .control || u == "\u{2028}" || u == "\u{2029}" {
                    out += "\\u{" + String(u.value, radix: 16, uppercase: true) + "}"
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out
    }
}
