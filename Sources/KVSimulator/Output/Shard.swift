import Foundation
import KVTrace

/// Shard `index` of `count` (1-based, `1/3` … `3/3`): which slice of a sweep's cells one process runs.
public struct ShardSpec: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Most shards a sweep may be split into.
    public static let maxCount = 100_000

    public let index: Int
    public let count: Int

    /// Nil unless `1 ≤ index ≤ count ≤ maxCount`.
    public init?(index: Int, count: Int) {
        guard count >= 1, count <= Self.maxCount, index >= 1, index <= count else { return nil }
        self.index = index
        self.count = count
    }

    /// `i/n`.
    public var description: String { "\(index)/\(count)" }

    /// The shard's folder under `OUT/shards/`: `i-of-n`.
    public var folderName: String { "\(index)-of-\(count)" }

    /// Parses a folder name `i-of-n`.
    public init?(folderName: String) {
        let p = folderName.components(separatedBy: "-of-")
        guard p.count == 2, let i = Int(p[0]), let n = Int(p[1]), String(i) == p[0], String(n) == p[1] else { return nil }
        self.init(index: i, count: n)
    }
}

/// The deterministic split of a sweep's cells (trace × setting × layer) into shards, balanced by
/// estimated cost.
///
/// Cells are ordered trace, layer, setting (grid order), so one shard holds runs of neighbouring
/// settings on the same layer and keeps sharing their per-layer work. A cell's estimated cost is
/// `query heads × P × sequence length` of its trace (the attention a layer replay reads), doubled
/// for a merging setting. With `C` the total and `c₀` the cost before a cell, the cell goes to
/// shard `min(n, ⌊(c₀ + c/2) · n / C⌋ + 1)`: each shard gets a contiguous run of cells whose cost is
/// `C/n` to within one cell. The split depends only on the traces' shapes and the grid, never on
/// timing, so every process computes the same one.
public struct ShardPlan: Sendable {
    struct Key: Hashable { var trace: Int; var layer: Int }
    /// This shard's settings (combination indices, grid order) per (trace, layer).
    let mine: [Key: [Int]]
    /// Cells given to this shard, and in the whole sweep.
    public let cellCount: Int
    public let totalCells: Int

    public init(_ sweep: Sweep, shard: ShardSpec) {
        let weights = sweep.combinations.map { $0.configuration.merges ? 2.0 : 1.0 }
        var traceCost: [Double] = []
        var total = 0.0
        var cells = 0
        for (_, s) in sweep.traces {
            let sh = s.info.shape
            let P = sweep.settings.compressionPoint ?? sh.prefillLen
            let c = Double(sh.queryHeads) * Double(max(1, P)) * Double(max(1, sh.seqLen))
            traceCost.append(c)
            total += c * weights.reduce(0, +) * Double(s.info.recordedLayers.count)
            cells += sweep.combinations.count * s.info.recordedLayers.count
        }
        var mine: [Key: [Int]] = [:]
        var count = 0
        var before = 0.0
        let n = Double(shard.count)
        for (t, (_, s)) in sweep.traces.enumerated() {
            for l in s.info.recordedLayers {
                for (c, w) in weights.enumerated() {
                    let cost = traceCost[t] * w
                    let owner = total > 0 ? min(shard.count, Int(((before + cost / 2) * n / total).rounded(.down)) + 1) : 1
                    before += cost
                    if owner == shard.index {
                        mine[Key(trace: t, layer: l), default: []].append(c)
                        count += 1
                    }
                }
            }
        }
        self.mine = mine
        cellCount = count
        totalCells = cells
    }

    /// The combination indices this shard runs on `layer` of trace `trace` (empty: none).
    public func combinations(trace: Int, layer: Int) -> [Int] { mine[Key(trace: trace, layer: layer)] ?? [] }
}

/// `OUT/shards/<i>-of-<n>/shard.json`: what a finished shard ran, written last (its presence marks
/// the shard complete). `collect` accepts shards only when all agree on everything but `shard`,
/// `cells` and their rows.
public struct ShardManifest: Sendable, Codable, Equatable {
    public static let fileName = "shard.json"
    public static let rowsFileName = "rows.json"
    public static let currentFormat = "kvscope-shard/1"

    public var format: String
    /// `sweep` (or `explore`): the command whose cells these are.
    public var command: String
    public var shard: ShardSpec
    public var cells: Int
    public var totalCells: Int
    /// Each trace's recorded layers, in the order the sweep walks them.
    public var layers: [[Int]]
    public var order: ResultOrderKeys
    /// The metadata of the unsharded command (`row_count` 0: `collect` fills it in).
    public var metadata: SweepMetadata
    /// An explore's safe-set settings (absent for a sweep): `collect` writes `safe.csv` from them.
    public var explore: SafeSpec?

    public init(
        command: String, shard: ShardSpec, cells: Int, totalCells: Int, layers: [[Int]], order: ResultOrderKeys, metadata: SweepMetadata,
        explore: SafeSpec? = nil
    ) {
        format = Self.currentFormat
        self.command = command; self.shard = shard; self.cells = cells; self.totalCells = totalCells
        self.layers = layers; self.order = order; self.metadata = metadata; self.explore = explore
    }

    func encoded() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.keyEncodingStrategy = .convertToSnakeCase
        return try e.encode(self)
    }

    static func decode(_ d: Data) throws -> ShardManifest {
        let dec = JSONDecoder()
        dec.keyDecodingStrategy = .convertFromSnakeCase
        return try dec.decode(ShardManifest.self, from: d)
    }
}

extension SweepMetadata: Equatable {
    public static func == (a: SweepMetadata, b: SweepMetadata) -> Bool {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        return (try? e.encode(a)) == (try? e.encode(b))
    }
}

/// Puts the shards of `OUT/shards/` back together into the table a single-process run writes.
public enum ShardCollector {
    /// The merged table: rows sorted exactly as a single-process sweep sorts them, and its metadata.
    public struct Collected: Sendable {
        public var manifest: ShardManifest
        public var rows: [ResultRow]
        public var metadata: SweepMetadata
    }

    /// Reads and checks every shard under `out/shards/`, then assembles the rows (`Sweep.assemble`).
    /// Refuses, naming the folder: no shards, a folder that is not `i-of-n`, an unfinished or missing
    /// shard, and shards of different split counts, formats, versions, commands or traces.
    public static func collect(_ out: URL) throws -> Collected {
        let fm = FileManager.default
        let dir = out.appendingPathComponent("shards")
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
            throw SimulatorError("\(out.path): no shards/ folder (run the sweep with --shard i/n -o \(out.path) first)")
        }
        let names = try fm.contentsOfDirectory(atPath: dir.path).filter { !$0.hasPrefix(".") }
        var found: [(spec: ShardSpec, url: URL)] = []
        for name in names {
            let u = dir.appendingPathComponent(name)
            guard let spec = ShardSpec(folderName: name) else { throw SimulatorError("\(u.path): not a shard folder (expected i-of-n)") }
            found.append((spec, u))
        }
        found.sort { ($0.spec.count, $0.spec.index) < ($1.spec.count, $1.spec.index) }
        guard let first = found.first else { throw SimulatorError("\(dir.path): holds no shards") }
        let n = first.spec.count
        if let other = found.first(where: { $0.spec.count != n }) {
            throw SimulatorError(
                "\(other.url.path): a shard of a \(other.spec.count)-way split, but \(first.url.path) is of a \(n)-way split")
        }
        var manifests: [(ShardManifest, URL)] = []
        for (spec, u) in found {
            let mu = u.appendingPathComponent(ShardManifest.fileName)
            guard let d = fm.contents(atPath: mu.path) else {
                throw SimulatorError("\(u.path): unfinished shard (no \(ShardManifest.fileName)): rerun shard \(spec) with --resume")
            }
            let m: ShardManifest
            do { m = try ShardManifest.decode(d) } catch { throw SimulatorError("\(mu.path): not a kvscope shard manifest") }
            guard m.format == ShardManifest.currentFormat else {
                throw SimulatorError("\(u.path): shard format \(m.format), expected \(ShardManifest.currentFormat)")
            }
            guard m.shard == spec else { throw SimulatorError("\(u.path): holds shard \(m.shard), not \(spec)") }
            manifests.append((m, u))
        }
        let (ref, refURL) = manifests[0]
        for (m, u) in manifests.dropFirst() {
            let why: String? =
                m.metadata.kvscopeVersion != ref.metadata.kvscopeVersion
                ? "written by kvscope \(m.metadata.kvscopeVersion), \(refURL.lastPathComponent) by \(ref.metadata.kvscopeVersion)"
                : m.command != ref.command || m.metadata.commandLine != ref.metadata.commandLine
                    ? "a shard of a different command than \(refURL.lastPathComponent) (\(m.metadata.commandLine.dropFirst().joined(separator: " ")))"
                    : m.metadata.traces.map(\.hash) != ref.metadata.traces.map(\.hash) || m.layers != ref.layers
                        ? "a shard of different traces than \(refURL.lastPathComponent)"
                        : m.metadata != ref.metadata || m.order != ref.order || m.totalCells != ref.totalCells || m.explore != ref.explore
                            ? "a shard of a different sweep than \(refURL.lastPathComponent)"
                            : nil
            if let why { throw SimulatorError("\(u.path): \(why)") }
        }
        let have = Set(found.map(\.spec.index))
        if let gap = (1 ... n).first(where: { !have.contains($0) }) {
            throw SimulatorError(
                "\(dir.appendingPathComponent("\(gap)-of-\(n)").path): missing (shard \(gap)/\(n) has not run; run it, then collect again)")
        }
        // Each trace's layer rows from every shard, in the order the single-process sweep walks them.
        var byTrace = [[(layer: Int, shard: Int, seq: Int, row: ResultRow)]](repeating: [], count: ref.layers.count)
        for (m, u) in manifests {
            let ru = u.appendingPathComponent(ShardManifest.rowsFileName)
            let rows: [[ResultRow]]
            do { rows = try PartStore.decode(try Data(contentsOf: ru)) } catch { throw SimulatorError("\(ru.path): unreadable shard rows") }
            guard rows.count == ref.layers.count else {
                throw SimulatorError("\(ru.path): rows for \(rows.count) trace(s), expected \(ref.layers.count)")
            }
            for (t, rs) in rows.enumerated() {
                let position = Dictionary(uniqueKeysWithValues: ref.layers[t].enumerated().map { ($1, $0) })
                for (k, r) in rs.enumerated() {
                    guard let l = r.layer, let p = position[l] else {
                        throw SimulatorError("\(ru.path): a row of a layer the trace does not record")
                    }
                    byTrace[t].append((p, m.shard.index, k, r))
                }
            }
        }
        let layerRows = byTrace.map { rs in rs.sorted { ($0.layer, $0.shard, $0.seq) < ($1.layer, $1.shard, $1.seq) }.map(\.row) }
        let metrics: [any Metric]
        do { metrics = try MetricCatalogue.select(ref.order.metrics) } catch { throw SimulatorError("\(refURL.path): \(error)") }
        let rows = Sweep.assemble(layerRows, order: ref.order, metrics: metrics)
        var meta = ref.metadata
        meta.rowCount = rows.count
        return Collected(manifest: ref, rows: rows, metadata: meta)
    }

    /// Writes `results.json`, for an explore `safe.csv`, and `results.csv` into `out`, together
    /// (`AtomicFile.writeAll`, csv last), byte-identical to the single-process sweep or explore.
    public static func write(_ c: Collected, to out: URL) throws {
        var files = [(try ResultWriter.json(c.rows, metadata: c.metadata), out.appendingPathComponent("results.json"))]
        if let spec = c.manifest.explore { files.append((Data(spec.apply(c.rows).csv.utf8), out.appendingPathComponent("safe.csv"))) }
        files.append((Data(ResultWriter.csvBytes(c.rows)), out.appendingPathComponent("results.csv")))
        try AtomicFile.writeAll(files)
    }

    /// Whether collected shards are of the command that would record `metadata` (`row_count` and the
    /// program path aside) with these explore settings: then that command's `--resume` reuses them.
    public static func isSameRun(_ c: Collected, metadata: SweepMetadata, explore: SafeSpec?) -> Bool {
        var a = c.manifest.metadata, b = metadata
        a.rowCount = 0; b.rowCount = 0
        a.commandLine = Array(a.commandLine.dropFirst()); b.commandLine = Array(b.commandLine.dropFirst())
        return a == b && c.manifest.explore == explore
    }
}
