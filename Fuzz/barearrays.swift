import Foundation

/// libFuzzer target `barearrays`: see `ReaderExercise` in KVTrace for what it drives.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = ReaderExercise.run("barearrays", Data(bytes: data, count: size))
    return 0
}
