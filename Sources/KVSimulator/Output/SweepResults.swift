import Foundation

/// A sweep folder's `results.json` read back through the types that wrote it: the rows as
/// ``ResultRow`` values and the run's ``SweepMetadata``.
///
/// The rows must decode (a file whose rows do not is not a KVScope results file). The metadata is
/// optional: a file written by another tool or an older KVScope may lack it or part of it, and then
/// `metadata` is nil and `metadataProblem` says why.
public struct SweepResults: Sendable {
    public var metadata: SweepMetadata?
    public var metadataProblem: String?
    public var rows: [ResultRow]

    public init(metadata: SweepMetadata?, metadataProblem: String? = nil, rows: [ResultRow]) {
        self.metadata = metadata
        self.metadataProblem = metadataProblem
        self.rows = rows
    }

    /// Decodes `{"metadata": …, "rows": […]}` as ``ResultWriter/json(_:metadata:)`` writes it.
    /// Errors are one line naming `file`.
    public static func decode(_ data: Data, file: String) throws -> SweepResults {
        // The rows' keys are snake case by their CodingKeys; the metadata's by the writer's key strategy.
        struct Rows: Decodable { var rows: [ResultRow] }
        struct Meta: Decodable { var metadata: SweepMetadata }
        let rows: [ResultRow]
        do {
            rows = try JSONDecoder().decode(Rows.self, from: data).rows
        } catch {
            throw SimulatorError("\(file): not a KVScope results.json (\(Self.oneLine(error)))")
        }
        let snake = JSONDecoder()
        snake.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return SweepResults(metadata: try snake.decode(Meta.self, from: data).metadata, rows: rows)
        } catch {
            return SweepResults(metadata: nil, metadataProblem: "run metadata unreadable: \(Self.oneLine(error))", rows: rows)
        }
    }

    /// Reads and decodes `url`.
    public static func load(_ url: URL) throws -> SweepResults {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw SimulatorError("\(url.path): cannot read the file") }
        return try decode(data, file: url.path)
    }

    /// A decoding error as one short line: where in the document, and what.
    static func oneLine(_ error: Error) -> String {
        func path(_ c: [CodingKey]) -> String {
            c.isEmpty ? "top level" : c.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        }
        let text: String
        switch error as? DecodingError {
        case let .keyNotFound(k, c)?: text = "\(path(c.codingPath)): no key '\(k.stringValue)'"
        case let .typeMismatch(_, c)?: text = "\(path(c.codingPath)): \(c.debugDescription)"
        case let .valueNotFound(_, c)?: text = "\(path(c.codingPath)): \(c.debugDescription)"
        case let .dataCorrupted(c)?: text = c.codingPath.isEmpty ? "not valid JSON" : "\(path(c.codingPath)): \(c.debugDescription)"
        default: text = "\(error)"
        }
        return text.split(separator: "\n").first.map(String.init) ?? text
    }
}
