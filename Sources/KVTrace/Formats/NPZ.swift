import Foundation
import ZIPFoundation

/// Reader for numpy's `.npz` archives (docs/trace-format.md#npz): a ZIP of `<key>.npy` members,
/// stored (`np.savez`) or deflated (`np.savez_compressed`), zip64 headers included.
///
/// Zip parsing is ZIPFoundation's. A member is inflated into memory when first asked for, into a
/// buffer of the size the central directory declares, capped by `traceMemoryCap` before allocating;
/// inflated data beyond the declared size is an error (zip-bomb guard). Members are cached.
public final class NPZArchive: @unchecked Sendable {
    public let url: URL
    /// Member keys (file names without `.npy`), in archive order.
    public let keys: [String]
    public let options: NPY.Options
    private let sizes: [String: (compressed: UInt64, uncompressed: UInt64)]
    private let lock = NSLock()
    private var cache: [String: Tensor] = [:]

    public init(_ url: URL, options: NPY.Options = .init()) throws {
        self.url = url
        self.options = options
        let archive: Archive
        do {
            archive = try Archive(url: url, accessMode: .read)
        } catch {
            if !FileManager.default.fileExists(atPath: url.path) { throw TraceError(file: url.path, "no such file") }
            throw TraceError(file: url.path, "not a readable zip archive (\(error))")
        }
        var keys: [String] = []
        var sizes: [String: (UInt64, UInt64)] = [:]
        for entry in archive where entry.type == .file {
            let key = entry.path.hasSuffix(".npy") ? String(entry.path.dropLast(4)) : entry.path
            keys.append(key)
            sizes[key] = (entry.compressedSize, entry.uncompressedSize)
        }
        guard !keys.isEmpty else { throw TraceError(file: url.path, "zip archive holds no arrays") }
        self.keys = keys
        self.sizes = sizes
    }

    /// The array stored under `key` (with or without the `.npy` suffix).
    public func array(_ key: String) throws -> Tensor {
        let key = key.hasSuffix(".npy") ? String(key.dropLast(4)) : key
        lock.lock()
        defer { lock.unlock() }
        if let t = cache[key] { return t }
        guard let size = sizes[key] else {
            throw TraceError(file: url.path, "no array named '\(key)' (the archive has \(keys.joined(separator: ", ")))")
        }
        let member = "\(url.path):\(key).npy"
        guard size.uncompressed <= UInt64(traceMemoryCap) else {
            throw TraceError(file: member, "declared size \(size.uncompressed) bytes exceeds the memory cap of \(traceMemoryCap) bytes")
        }
        let archive: Archive
        do { archive = try Archive(url: url, accessMode: .read) } catch {
            throw TraceError(file: url.path, "not a readable zip archive (\(error))")
        }
        guard let entry = archive[key + ".npy"] ?? archive[key] else { throw TraceError(file: member, "member vanished") }
        let capacity = Int(size.uncompressed)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 1), alignment: 16)
        var filled = 0
        var overflow = false
        do {
            _ = try archive.extract(entry, skipCRC32: false) { chunk in
                if filled + chunk.count > capacity { overflow = true; return }
                chunk.withUnsafeBytes { raw in
                    if let b = raw.baseAddress { (buffer + filled).copyMemory(from: b, byteCount: chunk.count) }
                }
                filled += chunk.count
            }
        } catch {
            buffer.deallocate()
            throw TraceError(file: member, "cannot read archive member: \(error)")
        }
        if overflow || filled != capacity {
            buffer.deallocate()
            throw TraceError(file: member, "member inflates to \(overflow ? "more" : "fewer") bytes than the \(capacity) its header declares")
        }
        let tensor = try NPY.parse(ByteStorage.owning(buffer, count: capacity, name: member), options: options)
        cache[key] = tensor
        return tensor
    }

    /// Bytes on disk.
    public var fileBytes: Int {
        (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
    }
}
