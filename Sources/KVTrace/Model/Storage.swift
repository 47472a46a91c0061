import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Read-only bytes behind one or more tensors: a memory-mapped file or an owned heap buffer.
///
/// This is the one class in `KVTrace` that is `@unchecked Sendable`: its bytes are never written
/// after `init`, and the mapping or buffer is released only in `deinit`, when no tensor refers to it.
public final class ByteStorage: @unchecked Sendable {
    /// First byte of the storage.
    public let base: UnsafeRawPointer
    /// Number of bytes.
    public let count: Int
    /// A name for messages: the file path, or `archive.npz:member.npy`.
    public let name: String
    private let release: @Sendable (UnsafeMutableRawPointer, Int) -> Void
    /// The file this storage maps, or nil for an owned buffer.
    public let mappedPath: String?

    /// True when the bytes are a mapping of the file at `path`.
    public func isMapped(_ path: String) -> Bool { mappedPath == path }

    private init(
        base: UnsafeMutableRawPointer, count: Int, name: String, mappedPath: String? = nil,
        release: @escaping @Sendable (UnsafeMutableRawPointer, Int) -> Void
    ) {
        self.mappedPath = mappedPath
        self.base = UnsafeRawPointer(base)
        self.count = count
        self.name = name
        self.release = release
    }

    deinit { release(UnsafeMutableRawPointer(mutating: base), count) }

    /// Maps a file read-only. Pages are read from disk only when touched.
    public static func map(_ url: URL) throws -> ByteStorage {
        let path = url.path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw TraceError(file: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw TraceError(file: path, "cannot stat") }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw TraceError(file: path, "is a folder, expected a file") }
        let size = Int(st.st_size)
        if size == 0 {
            let p = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 16)
            return ByteStorage(base: p, count: 0, name: path, mappedPath: path) { p, _ in p.deallocate() }
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw TraceError(file: path, "cannot memory-map: \(String(cString: strerror(errno)))")
        }
        return ByteStorage(base: p, count: size, name: path, mappedPath: path) { p, n in munmap(p, n) }
    }

    /// Takes ownership of a freshly allocated buffer (used for inflated archive members).
    public static func owning(_ pointer: UnsafeMutableRawPointer, count: Int, name: String) -> ByteStorage {
        ByteStorage(base: pointer, count: count, name: name) { p, _ in p.deallocate() }
    }

    /// Copies bytes into a new owned buffer (small data, tests).
    public static func copying(_ data: Data, name: String) -> ByteStorage {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(data.count, 1), alignment: 16)
        data.withUnsafeBytes { raw in
            if let b = raw.baseAddress { p.copyMemory(from: b, byteCount: data.count) }
        }
        return owning(p, count: data.count, name: name)
    }

    /// Reads a little-endian integer at `offset` without alignment requirements.
    @inlinable func loadLE<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

/// The memory cap for declared sizes, checked before allocating: half of physical memory
/// (docs/trace-format.md#validation), or `KVSCOPE_MEMORY_CAP` bytes when that variable is set.
public var traceMemoryCap: Int {
    if let s = ProcessInfo.processInfo.environment["KVSCOPE_MEMORY_CAP"], let v = Int(s), v > 0 { return v }
    return Int(ProcessInfo.processInfo.physicalMemory / 2)
}

/// Carries a value that is not `Sendable` (a buffer pointer, a closure pair) into
/// `DispatchQueue.concurrentPerform` tasks. Safe only when each task touches disjoint elements
/// and the value outlives the tasks; every use in KVScope is of that kind.
// @unchecked: the whole point of the box; the safety argument is the one above, at each use.
public struct UnsafeSendableBox<T>: @unchecked Sendable {
    public let value: T
    public init(_ v: T) { value = v }
}
