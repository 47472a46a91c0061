import Foundation

/// libFuzzer target `npz`: see `ReaderExercise` in KVTrace for what it drives.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = ReaderExercise.run("npz", Data(bytes: data, count: size))
    return 0
}
