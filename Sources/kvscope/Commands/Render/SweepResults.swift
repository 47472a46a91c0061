import Foundation
import KVSimulator

/// A sweep's rows, read from its `results.json` through `Codable` (``ResultRow``).
///
/// The path may be the `results.json` itself, the sweep's folder, or its `results.csv` (which
/// maps to the `results.json` beside it, since both are written together).
struct SweepResults {
    var rows: [ResultRow]
    /// The JSON file read, for messages.
    var file: String
    /// The run's metadata (traces with their paths, proxy rows, top-k), when the file has it.
    var metadata: SweepMetadata?

    /// The `results.json` a user's path stands for.
    static func jsonURL(for path: String) -> URL {
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            return url.appendingPathComponent("results.json")
        }
        if url.pathExtension.lowercased() == "csv" { return url.deletingLastPathComponent().appendingPathComponent("results.json") }
        return url
    }

    /// Reads and decodes the rows; every failure is one line naming the file.
    static func load(_ path: String) throws -> SweepResults {
        let url = jsonURL(for: path)
        let file = url.path
        guard let data = FileManager.default.contents(atPath: file) else {
            if url.path != URL(fileURLWithPath: path).path {
                throw CLIError("\(path): cannot read the file \(file) (render curves reads a sweep's results.json)")
            }
            throw CLIError("\(file): cannot read the file")
        }
        struct Document: Decodable { var rows: [ResultRow] }
        do {
            let doc = try JSONDecoder().decode(Document.self, from: data)
            // The metadata's keys are snake case; the rows' coding keys already are.
            struct Meta: Decodable { var metadata: SweepMetadata? }
            let d = JSONDecoder()
            d.keyDecodingStrategy = .convertFromSnakeCase
            return SweepResults(rows: doc.rows, file: file, metadata: (try? d.decode(Meta.self, from: data))?.metadata)
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw CLIError("\(file): not a sweep's results.json (missing '\(key.stringValue)' at \(Self.where(ctx)))")
        } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
            throw CLIError("\(file): not a sweep's results.json (wrong value at \(Self.where(ctx)))")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw CLIError("\(file): not valid JSON (\(ctx.debugDescription.split(separator: "\n").first ?? "unreadable"))")
        } catch {
            throw CLIError("\(file): not a sweep's results.json")
        }
    }

    static func `where`(_ ctx: DecodingError.Context) -> String {
        let p = ctx.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        return p.isEmpty ? "the top level" : p
    }

    /// The trace names present, in order of first appearance.
    var traces: [String] {
        var out: [String] = []
        for r in rows where !out.contains(r.trace) { out.append(r.trace) }
        return out
    }

    /// The metric ids present, sorted.
    var metrics: [String] { Array(Set(rows.map(\.metric))).sorted() }

    /// One measured point of a curve, before averaging over traces. `policy` is the series label:
    /// the policy, plus every setting axis that varies within that policy's rows.
    struct Point {
        var trace: String; var traceHash: String; var policy: String; var base: String; var merge: String; var budget: Double;
        var y: Double; var x: Double
    }

    /// The position of a row along its curve: the budget fraction, the token count, or the hh ratio.
    static func position(_ r: ResultRow) -> Double? { r.budget ?? r.tokens.map(Double.init) ?? r.hhRatio }

    /// The series label of each row: the policy label, plus `name=value` for every axis (the
    /// parameters, the recent share or ratio, the fidelity) that takes several values within that
    /// policy's rows, so a curve never averages different settings.
    func seriesLabels() -> [ResultRow: String] {
        var axes: [String: [String: Set<String>]] = [:]
        func values(_ r: ResultRow) -> [String: String] {
            var v: [String: String] = ["fidelity": r.fidelity]
            for (k, x) in r.parameters { v[k] = x.description }
            if let s = r.recentShare { v["recent_share"] = "\(s)" }
            if let y = r.recentRatio { v["recent_ratio"] = "\(y)" }
            return v
        }
        for r in rows { for (k, v) in values(r) { axes[r.policy, default: [:]][k, default: []].insert(v) } }
        var out: [ResultRow: String] = [:]
        for r in rows {
            let varying = (axes[r.policy] ?? [:]).filter { $0.value.count > 1 }.keys.sorted()
            let v = values(r)
            out[r] = varying.isEmpty ? r.policy : "\(r.policy) (" + varying.map { "\($0)=\(v[$0]!)" }.joined(separator: ", ") + ")"
        }
        return out
    }

    /// `metric` per (trace, series, position): the all-layers, all-heads row when present, else
    /// the mean over per-layer rows (uniform weights), else over per-head rows; per-image rows
    /// (`image_retention`) are averaged over images. x is the actual kept ratio: the `kept_ratio`
    /// metric when the sweep has it, else the row's `actual_tokens / compression_point`.
    /// `missing` holds the (trace, series, position) whose all-layers row has no value (a cell the
    /// sweep could not compute, e.g. SnapKV needing rows the trace lacks), with y = NaN: figures
    /// mark them.
    func points(metric: String) throws -> (values: [Point], missing: [Point]) {
        struct Key: Hashable { var trace: String; var policy: String; var budget: Double }
        let labels = seriesLabels()
        var style: [String: (String, String)] = [:]
        func key(_ r: ResultRow) -> Key? {
            guard let b = Self.position(r), let l = labels[r] else { return nil }
            style[l] = (r.base, r.merge)
            return Key(trace: r.traceHash, policy: l, budget: b)
        }
        /// Mean of the best-scoped rows of `m` per key.
        func collect(_ m: String) -> [Key: Double] {
            // scope 0: layer all & head all; 1: one layer, head all; 2: per head.
            var byScope: [Key: [Int: [Double]]] = [:]
            // Flow rows (merge_flow, one per source → target) are a matrix, not a curve: `render merge-flow` draws them.
            for r in rows where r.metric == m && r.source == nil {
                guard let v = r.value, v.isFinite, let k = key(r) else { continue }
                let scope = r.layer == nil && r.head == nil ? 0 : (r.head == nil ? 1 : 2)
                byScope[k, default: [:]][scope, default: []].append(v)
            }
            return byScope.compactMapValues { scopes in
                guard let vs = scopes.keys.sorted().first.flatMap({ scopes[$0] }), !vs.isEmpty else { return nil }
                return vs.reduce(0, +) / Double(vs.count)
            }
        }
        let ys = collect(metric)
        guard !ys.isEmpty else {
            throw CLIError("\(file): no values for metric '\(metric)' (metrics present: \(metrics.joined(separator: ", ")))")
        }
        let kept = collect("kept_ratio")
        var actual: [Key: [Double]] = [:]
        for r in rows where r.keptRatio.isFinite && r.layer == nil && r.head == nil {
            if let k = key(r) { actual[k, default: []].append(r.keptRatio) }
        }
        let names = Dictionary(rows.map { ($0.traceHash, $0.trace) }, uniquingKeysWith: { a, _ in a })
        func point(_ k: Key, _ y: Double) -> Point {
            let x = kept[k] ?? actual[k].map { $0.reduce(0, +) / Double($0.count) } ?? k.budget
            let (base, merge) = style[k.policy] ?? (k.policy, "none")
            return Point(
                trace: names[k.trace] ?? k.trace, traceHash: k.trace, policy: k.policy, base: base, merge: merge, budget: k.budget, y: y,
                x: x)
        }
        var empty = Set<Key>()
        for r in rows where r.metric == metric && r.source == nil && r.layer == nil && r.head == nil && r.value == nil {
            if let k = key(r), ys[k] == nil { empty.insert(k) }
        }
        func sorted(_ p: [Point]) -> [Point] { p.sorted { ($0.policy, $0.budget, $0.trace) < ($1.policy, $1.budget, $1.trace) } }
        return (sorted(ys.map(point)), sorted(empty.map { point($0, .nan) }))
    }
}
