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

/// `RowJSON` writes the bytes `JSONEncoder` makes of result rows, compact and pretty, and in the
/// `results.json` document; the rows read back equal.
@Suite struct RowJSONTests {
    /// Rows of every registry policy (their declared parameters), one merge wrapper, every budget
    /// kind, every optional field set and unset, non-finite and awkward numbers, strings to escape.
    static func rows() throws -> [ResultRow] {
        var configurations = PolicyRegistry.ids.map { PolicyConfiguration($0) }
        configurations.append(try PolicyConfiguration.parse("h2o", merge: .pivotal))
        configurations.append(try PolicyConfiguration.parse("lookm", scope: .image))
        let budgets: [BudgetSpec] = [.fraction(0.2), .tokens(64, recentShare: 0.25), .ratios(heavy: 0.1, recent: 0.05)]
        let numbers: [Double] = [1, 0.1, 1e-7, 1e16, -0.0, .leastNonzeroMagnitude, 1.7976931348623157e308, 123456.0, 2.5e-5, 1 / 3]
        let names = ["llava \"1.5\"/a,b", "tab\there\nnew\r\u{1}\u{1F}\u{7F}", "é😀 ", ""]
        var rows: [ResultRow] = []
        var k = 0
        for c in configurations {
            for b in budgets {
                k += 1
                let x = numbers[k % numbers.count]
                var r = ResultRow(
                    trace: names[k % names.count], traceHash: "h\(k)", configuration: c, fidelity: "code", budget: b,
                    compressionPoint: 100 + k, nominalTokens: k, actualTokens: k % 4 == 0 ? .nan : x * 3,
                    metric: k % 2 == 0 ? "image_retention" : "merge_flow", layer: k % 3 == 0 ? nil : k, head: k % 5 == 0 ? k : nil,
                    image: k % 2 == 0 ? k % 3 : nil, source: k % 2 == 1 ? "image 0" : nil, target: k % 2 == 1 ? "dropped" : nil,
                    value: k % 7 == 0 ? nil : x, evalRows: k % 3 == 0 ? .proxy : .future, evalRowCount: k,
                    note: k % 7 == 0 ? "needs q, \"k\"/v\n" : nil, step: k % 4 == 1 ? k : nil)
                if k % 6 == 0 { r.parameters["xs"] = .integers([1, 2, 3]); r.parameters["empty"] = .integers([]) }
                if k % 5 == 0 { r.parameters["r"] = .real(x) }
                rows.append(r)
            }
        }
        return rows
    }

    @Test func compactAndPrettyBytesAreJSONEncoders() throws {
        let rows = try Self.rows()
        #expect(rows.contains { !$0.parameters.isEmpty } && rows.contains { $0.parameters.isEmpty })
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        #expect(RowJSON.array(rows, pretty: false) == [UInt8](try e.encode(rows)))
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        let pretty = RowJSON.array(rows, pretty: true)
        #expect(pretty == [UInt8](try e.encode(rows)))
        #expect(RowJSON.array([], pretty: true) == [UInt8](try e.encode([ResultRow]())))
        #expect(RowJSON.array([], pretty: false) == Array("[]".utf8))
        e.outputFormatting = [.sortedKeys]
        #expect(RowJSON.arrays([rows, [], Array(rows.prefix(3))]) == [UInt8](try e.encode([rows, [], Array(rows.prefix(3))])))
        #expect(RowJSON.arrays([]) == Array("[]".utf8))
        // Read back, the rows write the same bytes again (a real parameter with an integral value
        // reads back as an integer, whose text is the same).
        let compact = RowJSON.array(rows, pretty: false)
        let back = try JSONDecoder().decode([ResultRow].self, from: Data(compact))
        #expect(back.count == rows.count && RowJSON.array(back, pretty: false) == compact)
        #expect(zip(back, rows).allSatisfy { $0.value == $1.value && $0.note == $1.note && $0.trace == $1.trace })
    }

    @Test func theResultsDocumentIsJSONEncoders() throws {
        struct Doc: Encodable { var metadata: SweepMetadata; var rows: [ResultRow] }
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.keyEncodingStrategy = .convertToSnakeCase
        for rows in [try Self.rows(), []] {
            let meta = SweepMetadata(
                kvscopeVersion: "0", commandLine: ["kvscope", "sweep", "a/b"], traces: [], policies: ["h2o"], budgets: ["fraction=0.2"],
                fidelities: ["code"], metrics: ["attention_recall"], topK: 16, proxyWindow: 32, rowCount: rows.count)
            let mine = try ResultWriter.json(rows, metadata: meta)
            #expect(mine == (try e.encode(Doc(metadata: meta, rows: rows))), "\(rows.count) rows")
        }
    }
}
