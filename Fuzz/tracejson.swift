import Foundation

/// libFuzzer target `tracejson`: see `ReaderExercise` in KVTrace for what it drives.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = ReaderExercise.run("tracejson", Data(bytes: data, count: size))
    return 0
}
