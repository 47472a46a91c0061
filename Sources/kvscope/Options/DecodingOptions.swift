import ArgumentParser
import KVSimulator

/// `--decoding`, `--recompress-every N`, `--evict-per-step`: replay through decoding
/// (docs/metrics.md#replay-through-decoding). Either what-if implies `--decoding`.
struct DecodingOptions: ParsableArguments {
    @Flag(
        help: "Measure every metric at each generated step t on the rows up to t (a step column); needs generated rows.")
    var decoding = false
    @Option(
        help: ArgumentHelp(
            "Run the policy again on the cache every N generated steps, with the attention seen so far (implies --decoding).",
            valueName: "N"))
    var recompressEvery: Int?
    @Flag(
        help: "H2O's decode rule: evict one token per generated token by accumulated attention, keeping C fixed (implies --decoding).")
    var evictPerStep = false

    /// The typed setting, or nil without any of the three flags.
    var replay: DecodingReplay? {
        guard decoding || recompressEvery != nil || evictPerStep else { return nil }
        return DecodingReplay(recompressEvery: recompressEvery, evictPerStep: evictPerStep)
    }

    func validate() throws {
        if let p = replay?.problem { throw ValidationError(p) }
    }
}
