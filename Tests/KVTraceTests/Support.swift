import Foundation
import KVTrace
@_exported import KVTestSupport

/// Paths shared by the KVTrace tests (the trace builder is `TestTrace`, in KVTestSupport).
enum Paths {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let shared = repo.deletingLastPathComponent().appendingPathComponent("shared")
    static var sharedExists: Bool { FileManager.default.fileExists(atPath: shared.appendingPathComponent("traces").path) }

    static func tempDir(_ tag: String = "kvtrace") -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}

/// The value make_fixtures.py stores at flat index i of a float array.
func fixtureFloat(_ i: Int) -> Double { Double(i % 7) * 0.25 - 0.5 }
/// The value make_fixtures.py stores at flat index i of an int array.
func fixtureInt(_ i: Int) -> Int { i * 3 - 5 }
