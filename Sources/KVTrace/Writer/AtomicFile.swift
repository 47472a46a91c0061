import CFileIO
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes files atomically: the bytes go to a temporary file `.<name>.tmp-<pid>` in the same
/// folder, every `write(2)`, the `fsync(2)` and the `close(2)` are checked, and the temporary file
/// then replaces the target with one `rename(2)` — there is never a moment without a complete
/// file, and a failure (full disk, read-only folder, a kill) leaves the old file untouched.
///
/// A folder where a file is to go is refused, never removed. Temporary files of processes that no
/// longer run are removed before each write (`removeStaleTemporaries`).
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL) throws {
        try writeAll([(data, url)])
    }

    /// Writes one file atomically as `write(_:to:)` does, its bytes given piece by piece by `body`
    /// through a `Sink` while it computes the next ones: each `Sink.write` goes to the temporary
    /// file at once, and `Sink.startWriteback()` lets the disk start on what is there, so that the
    /// final `fsync(2)` waits only for the rest. An error thrown by `body` or by a write leaves the
    /// target untouched and no temporary file behind.
    public static func write(to url: URL, streaming body: (inout Sink) throws -> Void) throws {
        let tmp = try prepareTemporary(for: url)
        do {
            try writeFile(to: tmp, target: url, body)
            try commit(tmp, to: url)
        } catch {
            unlink(tmp.path)
            throw error
        }
    }

    /// The open temporary file of a streamed write (`write(to:streaming:)`).
    public struct Sink {
        let fd: Int32
        let target: URL
        /// Bytes written so far.
        public private(set) var count = 0
        /// Bytes whose writeback was started.
        private var started = 0

        init(fd: Int32, target: URL) {
            self.fd = fd
            self.target = target
        }

        /// Appends the bytes (every `write(2)` checked, interrupted ones resumed).
        public mutating func write(_ raw: UnsafeRawBufferPointer) throws {
            var done = 0
            while done < raw.count {
                let n = posixWrite(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw AtomicFile.cannotWrite(target, errno)
                }
                done += n
            }
            count += raw.count
        }

        public mutating func write(_ data: Data) throws { try data.withUnsafeBytes { try write($0) } }

        /// Starts writing the bytes appended since the last call to disk without waiting
        /// (`sync_file_range(SYNC_FILE_RANGE_WRITE)` on Linux; nothing elsewhere). Only a head start:
        /// the `fsync(2)` at the end still waits for every byte and reports any late write error.
        public mutating func startWriteback() {
            #if os(Linux)
            if count > started { _ = sync_file_range(fd, Int64(started), Int64(count - started), KV_SYNC_FILE_RANGE_WRITE) }
            #endif
            started = count
        }
    }

    /// Writes several files so that they appear together: every temporary file is written first,
    /// then they are renamed in the order given (put the file readers look for first — e.g.
    /// `results.csv` — last). If any write fails, no target is touched.
    public static func writeAll(_ files: [(Data, URL)]) throws {
        var temps: [(URL, URL)] = []
        do {
            for (data, url) in files {
                let tmp = try prepareTemporary(for: url)
                temps.append((tmp, url))
                try writeFile(to: tmp, target: url) { try $0.write(data) }
            }
            for (tmp, url) in temps { try commit(tmp, to: url) }
        } catch {
            for (tmp, _) in temps { unlink(tmp.path) }
            throw error
        }
    }

    /// Creates `dir` and its missing parents (`mkdir -p`); a file in the way, a read-only parent or
    /// a full disk is one error naming the path and the system's reason.
    public static func makeFolder(_ dir: URL) throws {
        var path = ""
        for c in dir.standardizedFileURL.pathComponents {
            path += c == "/" ? "/" : (path.hasSuffix("/") ? c : "/" + c)
            var st = stat()
            if stat(path, &st) == 0 {
                guard st.st_mode & S_IFMT == S_IFDIR else { throw TraceError(file: path, "is a file, expected a folder") }
                continue
            }
            guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
                throw TraceError(file: path, "cannot create the folder: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// `.<name>.tmp-<pid>` beside `url`.
    public static func temporary(for url: URL) -> URL {
        url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    }

    /// Refuses a target that is a folder (a file never replaces a folder) or another non-regular
    /// file such as a device (`/dev/full`): only regular files and symbolic links are replaced.
    public static func refuseFolder(at url: URL) throws {
        var st = stat()
        guard lstat(url.path, &st) == 0 else { return }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: throw TraceError(file: url.path, "is a folder; refusing to replace it with a file")
        case S_IFREG, S_IFLNK: return
        default: throw TraceError(file: url.path, "is not a regular file (a device or pipe); refusing to replace it")
        }
    }

    /// Removes `.*.tmp-<pid>` files in `dir` whose process no longer runs (left by a kill).
    public static func removeStaleTemporaries(in dir: URL) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { return }
        for n in names where n.hasPrefix(".") {
            guard let r = n.range(of: ".tmp-", options: .backwards), let pid = Int32(n[r.upperBound...]) else { continue }
            if pid != getpid(), kill(pid, 0) != 0, errno == ESRCH { unlink(dir.appendingPathComponent(n).path) }
        }
    }

    /// Checks `url`'s folder (made when missing, a folder at `url` refused), removes stale
    /// temporaries there, and returns the temporary path to write.
    static func prepareTemporary(for url: URL) throws -> URL {
        let dir = url.deletingLastPathComponent()
        try refuseFolder(at: url)
        try makeFolder(dir)
        removeStaleTemporaries(in: dir)
        return temporary(for: url)
    }

    /// The one `rename(2)` that puts a written temporary file in place.
    static func commit(_ tmp: URL, to url: URL) throws {
        guard rename(tmp.path, url.path) == 0 else { throw cannotWrite(url, errno) }
    }

    static func cannotWrite(_ target: URL, _ code: Int32) -> TraceError {
        TraceError(file: target.path, "cannot write: \(String(cString: strerror(code)))")
    }

    /// Creates `tmp`, lets `body` write it, then `fsync(2)` and `close(2)`, each checked; on any
    /// failure `tmp` is removed and the error names `target`.
    static func writeFile(to tmp: URL, target: URL, _ body: (inout Sink) throws -> Void) throws {
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw cannotWrite(target, errno) }
        var sink = Sink(fd: fd, target: target)
        var failure: Error?
        do { try body(&sink) } catch { failure = error }
        if failure == nil, fsync(fd) != 0, errno != EINVAL { failure = cannotWrite(target, errno) }
        if close(fd) != 0, failure == nil { failure = cannotWrite(target, errno) }
        if let failure {
            unlink(tmp.path)
            throw failure
        }
    }

    /// The POSIX reason of a Foundation file error, else its description.
    public static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let u = ns.userInfo[NSUnderlyingErrorKey] as? NSError, u.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(u.code)))
        }
        return ns.domain == NSPOSIXErrorDomain ? String(cString: strerror(Int32(ns.code))) : "file system error \(ns.code)"
    }
}

/// Checks that an output path does not write into or over an input.
public enum OutputGuard {
    /// Throws when `output` (a file or folder about to be written) is one of `inputs`, lies inside
    /// an input folder, or contains an input (`flag` names the output's flag in the message).
    /// Paths are compared after resolving symbolic links and `..`; existing files also by inode.
    public static func check(_ output: String, against inputs: [String], flag: String) throws {
        let out = resolved(output)
        for input in inputs {
            let inp = resolved(input)
            let same = out == inp || sameFile(output, input)
            if same || out.hasPrefix(inp + "/") || inp.hasPrefix(out + "/") {
                throw TraceError(file: output, "\(flag): would write \(same ? "over" : "into") the input \(input); choose another path")
            }
        }
    }

    static func resolved(_ p: String) -> String {
        var url = URL(fileURLWithPath: p).standardizedFileURL
        // Resolve the longest existing prefix (the output itself may not exist yet).
        var tail: [String] = []
        while !FileManager.default.fileExists(atPath: url.path), url.pathComponents.count > 1 {
            tail.insert(url.lastPathComponent, at: 0)
            url.deleteLastPathComponent()
        }
        var base = url.resolvingSymlinksInPath().path
        for t in tail { base += (base.hasSuffix("/") ? "" : "/") + t }
        return base
    }

    static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }
}

/// `write(2)` (named apart from `AtomicFile.write`).
func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, p, n)
    #else
    return Darwin.write(fd, p, n)
    #endif
}
