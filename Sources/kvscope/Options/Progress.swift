import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A progress bar on stderr with ETA, drawn only when stderr is a terminal.
final class Progress {
    let total: Int
    let label: String
    private var done = 0
    private let start = Date()
    private let enabled = isatty(2) != 0

    init(total: Int, label: String) {
        self.total = max(total, 1)
        self.label = label
    }

    func step(_ n: Int = 1) {
        done += n
        guard enabled else { return }
        let frac = Double(done) / Double(total)
        let elapsed = Date().timeIntervalSince(start)
        let eta = frac > 0 ? elapsed * (1 - frac) / frac : 0
        let width = 30
        let filled = Int(frac * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        FileHandle.standardError.write(
            Data(String(format: "\r%@ %@ %d/%d  %.0fs elapsed, ETA %.0fs ", label, bar, done, total, elapsed, eta).utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
