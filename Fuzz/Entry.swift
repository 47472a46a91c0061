import Foundation

/// The libFuzzer entry point for every reader: `KVSCOPE_FUZZ_TARGET` (npy, npz, safetensors,
/// tracejson or barearrays) picks which `ReaderExercise` function each input goes through, so
/// one instrumented build serves all five targets.
let fuzzTarget: String = {
    let t = ProcessInfo.processInfo.environment["KVSCOPE_FUZZ_TARGET"] ?? ""
    guard ReaderExercise.targets.contains(t) else {
        FileHandle.standardError.write(Data("KVSCOPE_FUZZ_TARGET must be one of \(ReaderExercise.targets.joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return t
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = ReaderExercise.run(fuzzTarget, Data(bytes: data, count: size))
    return 0
}
