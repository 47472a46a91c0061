import ArgumentParser
import Foundation
import KVSimulator

/// `kvscope metrics [ID]`: every metric's definition, from the metric types themselves.
struct MetricsCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample("metrics"),
        HelpExample("metrics attention_recall"),
        HelpExample("metrics --json"),
    ]

    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "List the metrics a replay measures, or print one metric's definition.",
        discussion: """
            Every metric is measured per layer on the evaluation rows (the rows after P when the trace records \
            them, else the last prefill rows, marked proxy), then aggregated over layers: the uniform mean of \
            the layers where it is defined (the sum for cache_bytes). docs/metrics.md has the same definitions.
            """ + "\n\n" + HelpExample.section(examples)
    )

    @Argument(help: ArgumentHelp("A metric id (a family such as recall_<modality> by any member: recall_image).", valueName: "id"))
    var id: String?
    @Flag(name: .customLong("json"), help: "Print the definitions as JSON.")
    var json = false

    struct Entry: Encodable {
        var id: String
        var definition: String
        var better: String
        var fullCache: Double?
        var aggregation: String
        enum CodingKeys: String, CodingKey { case id, definition, better, fullCache = "full_cache", aggregation }
    }

    func run() throws {
        let chosen: [any Metric]
        if let id {
            do { chosen = try MetricCatalogue.select([id]) } catch { throw CLIError("\(id): \(error)") }
        } else {
            chosen = MetricCatalogue.all
        }
        let entries = chosen.map { m -> Entry in
            let t = type(of: m)
            return Entry(
                id: t.id, definition: t.definition, better: t.preference.rawValue, fullCache: t.fullCacheValue,
                aggregation: m.aggregation == .sum ? "sum over layers" : "mean over layers")
        }
        if json {
            print(try jsonText(id == nil ? AnyEncodable(entries) : AnyEncodable(entries[0])))
            return
        }
        for (i, e) in entries.enumerated() {
            if i > 0 { print("") }
            var head = e.id
            if e.better != "neither" {
                head += "  (\(e.better) is better" + (e.fullCache.map { "; full cache \(RenderSupport.fmt3($0))" } ?? "") + ")"
            }
            print(head)
            print(PolicyCatalogue.wrap(e.definition, width: 96).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            print("  all layers: \(e.aggregation)")
        }
    }
}

/// Encodes either one value or a list through one call.
struct AnyEncodable: Encodable {
    let encodeTo: (any Encoder) throws -> Void
    init<T: Encodable>(_ v: T) { encodeTo = v.encode }
    func encode(to encoder: any Encoder) throws { try encodeTo(encoder) }
}
