import Foundation
import KVPolicies
import Testing
@testable import KVSimulator

/// A row whose policy made no decision has NaN kept tokens: JSON must carry that as `null` (never a
/// number a reader would plot) and read it back as NaN, and such a row must still work as a key.
@Suite struct ResultRowCodingTests {
    static func row(actual: Double) -> ResultRow {
        ResultRow(
            trace: "t", traceHash: "h", configuration: PolicyConfiguration("snapkv"), fidelity: "code", budget: .fraction(0.3),
            compressionPoint: 100, nominalTokens: 30, actualTokens: actual, metric: "attention_recall", layer: nil, head: nil,
            image: nil, value: nil, evalRows: .future, evalRowCount: 4, note: "needs rows 129..<161")
    }

    @Test func notFiniteKeptTokensAreNullInJSONAndNaNBack() throws {
        let data = try JSONEncoder().encode([Self.row(actual: .nan), Self.row(actual: 30)])
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"actual_tokens\":null") && text.contains("\"actual_tokens\":30"), "\(text)")
        let back = try JSONDecoder().decode([ResultRow].self, from: data)
        #expect(back[0].actualTokens.isNaN && back[0].keptRatio.isNaN && back[1].actualTokens == 30)
        // Found again as a dictionary key (NaN != NaN would lose it).
        let labels = [back[0]: "a", back[1]: "b"]
        #expect(labels[Self.row(actual: .nan)] == "a" && labels[back[1]] == "b")
        #expect(Self.row(actual: .nan) != Self.row(actual: 30))
    }
}
