import Foundation
import KVTrace

/// Writes `data` to the file a flag names, atomically; a failure is one line naming the flag.
func writeOutput(_ data: Data, to path: String, flag: String) throws {
    do {
        try AtomicFile.write(data, to: URL(fileURLWithPath: path))
    } catch {
        throw CLIError("\(flag) \(path): cannot write the file (\((error as NSError).localizedDescription))")
    }
}
