import Foundation
import KVPolicies
import KVSimulator
import KVTrace

/// Writes `data` to the file a flag names, atomically; a failure is one line naming the flag.
func writeOutput(_ data: Data, to path: String, flag: String) throws {
    do {
        try AtomicFile.write(data, to: URL(fileURLWithPath: path))
    } catch let e as TraceError {
        throw CLIError("\(flag) \(e.description)")
    }
}

/// `value` as every `--json` flag prints it: pretty-printed with sorted keys, and the non-finite
/// numbers JSON cannot hold as the strings `inf`, `-inf` and `nan`.
func jsonText(_ value: some Encodable) throws -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return String(decoding: try e.encode(value), as: UTF8.self)
}

/// The keys `simulate --json` and `compare --json` start with: the trace, the configured policy
/// (with its parameters and fidelity where the report states them) and the budget asked for at the
/// compression point.
struct RunJSON: Encodable {
    var trace: String
    var traceHash: String
    var policy: String
    var params: String?
    var fidelity: String?
    var budgetSpec: String
    var compressionPoint: Int

    enum CodingKeys: String, CodingKey {
        case trace, traceHash = "trace_hash", policy, params, fidelity, budgetSpec = "budget_spec"
        case compressionPoint = "compression_point"
    }

    init(_ info: TraceInfo, policy: String, params: String? = nil, fidelity: Fidelity? = nil, budget: BudgetSpec, compressionPoint: Int) {
        trace = info.name
        traceHash = info.contentHash
        self.policy = policy
        self.params = params
        self.fidelity = fidelity?.rawValue
        budgetSpec = Combination.budgetText(budget)
        self.compressionPoint = compressionPoint
    }
}

/// A `--json` report of one run: one object with the keys of `run` and those of `report` (the two
/// share none).
struct RunReport<Report: Encodable>: Encodable {
    var run: RunJSON
    var report: Report

    func encode(to encoder: any Encoder) throws {
        try run.encode(to: encoder)
        try report.encode(to: encoder)
    }
}
