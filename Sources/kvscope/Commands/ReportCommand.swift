import ArgumentParser
import Foundation
import KVPlot
import KVPolicies
import KVReport
import KVSimulator
import KVTrace

/// `kvscope report`: a sweep or explore folder as one self-contained HTML page.
struct ReportCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample(
            "sweep Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policies full,oracle,h2o,lookm --budgets 0.2 -o Output/sweep-small",
            note: "first a sweep"),
        HelpExample("report Output/sweep-small"),
    ]

    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Turn a sweep or explore folder into one self-contained HTML page to read and share.",
        discussion: """
            Reads DIR/results.json (the rows and run metadata `kvscope sweep --out DIR` writes) and, when \
            present, DIR/safe.csv (an explorer's safe settings) with the ratio maps beside it (*ratio*.svg or \
            .png). Writes one HTML file with everything inline (styles, SVG figures; no script, nothing loaded \
            from the network), so it opens offline and can be mailed as is:

              what was run: the command line, KVScope version, every trace with its content hash, provenance \
            and pseudo-image warnings, every policy with its settings;
              per trace, a summary table (policy × budget → the headline metrics, the best value at each \
            budget marked, the full cache and the oracle as references) and a table of every series;
              budget curves of every scored metric; retention maps and per-image patch grids at --budget \
            (default: the median budget of the run), replayed from the trace the run recorded (or --trace);
              the cheapest safe settings, for an explore folder;
              missing and degenerate cells with their reasons, and every metric's definition.

            A trace that cannot be found or has changed since the run is reported on the page and its maps \
            left out; the rest of the report is still written. The same folder gives the same bytes.
            """ + "\n\n" + HelpExample.section(examples)
    )

    @Argument(help: ArgumentHelp("A sweep's or explorer's output folder (holding results.json, or safe.csv).", valueName: "dir"))
    var folder: String
    @Option(
        name: [.customShort("o"), .customLong("output")],
        help: ArgumentHelp("The HTML file to write (default: DIR/report.html).", valueName: "file"))
    var output: String?
    @Option(
        help: ArgumentHelp(
            "Budget fraction of the retention maps and patch grids, 0 < b ≤ 1 (default: the run's median budget; the lower of the middle two for an even count).",
            valueName: "b"))
    var budget: Double?
    @Option(
        name: .customLong("trace"),
        help: ArgumentHelp(
            "A trace of the run, found by its content hash, when it has moved since the run (repeatable).", valueName: "path"))
    var traces: [String] = []
    @Option(help: ArgumentHelp("The page title (default: KVScope study: <folder name>).", valueName: "text"))
    var title: String?
    @Flag(help: "Leave out the retention maps and patch grids (no trace is read).")
    var noMaps = false

    func validate() throws {
        if let b = budget, !(b.isFinite && b > 0 && b <= 1) { throw ValidationError("--budget must be in (0, 1], got \(b)") }
    }

    func run() throws {
        let fm = FileManager.default
        let dir = URL(fileURLWithPath: folder)
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: dir.path, isDirectory: &isDir) else { throw CLIError("\(folder): no such folder") }
        guard isDir.boolValue else { throw CLIError("\(folder): not a folder (give the folder a sweep wrote with --out)") }
        let json = dir.appendingPathComponent("results.json"), safe = dir.appendingPathComponent("safe.csv")
        let hasJSON = fm.fileExists(atPath: json.path), hasSafe = fm.fileExists(atPath: safe.path)
        guard hasJSON || hasSafe else {
            throw CLIError("\(folder): not a sweep or explore folder (no results.json or safe.csv)")
        }
        let results: KVSimulator.SweepResults
        do {
            results =
                hasJSON
                ? try KVSimulator.SweepResults.load(json)
                : KVSimulator.SweepResults(metadata: nil, metadataProblem: "no results.json", rows: [])
        } catch {
            throw CLIError("\(error)")
        }
        if hasJSON, results.rows.isEmpty { throw CLIError("\(json.path): the sweep has no result rows (nothing to report)") }
        var explore: ExploreSection?
        if hasSafe {
            guard let text = (try? Data(contentsOf: safe)).map({ String(decoding: $0, as: UTF8.self) }) else {
                throw CLIError("\(safe.path): cannot read the file")
            }
            do { explore = ExploreSection(file: "safe.csv", table: try ExploreTable.parse(text, file: safe.path)) } catch {
                throw CLIError("\(error)")
            }
            if !hasJSON, explore!.table.rows.isEmpty { throw CLIError("\(safe.path): no rows (nothing to report)") }
            explore!.figures = ratioMaps(in: dir, notes: &explore!.notes)
        }
        let out = URL(fileURLWithPath: output ?? dir.appendingPathComponent("report.html").path)
        for input in [json, safe] where out.standardizedFileURL.path == input.standardizedFileURL.path {
            throw CLIError("--output \(out.path): that is an input of the report; choose another file")
        }
        let study = Study(rows: results.rows)
        var provenance: [String: TraceProvenance] = [:]
        var maps: [String: TraceMaps] = [:]
        var extra: [Problem] = []
        if let p = results.metadataProblem, hasJSON { extra.append(Problem(kind: .trace, trace: "—", reason: p)) }
        let moved = try movedTraces()
        for t in study.traces {
            let (prov, source) = open(t, recorded: results.metadata?.traces.first { $0.hash == t.hash }?.path, moved: moved)
            provenance[t.hash] = prov
            if source == nil { extra.append(Problem(kind: .trace, trace: t.name, reason: prov.warnings.first ?? "trace not available")) }
            if !noMaps { maps[t.hash] = try traceMaps(t, source: source) }
        }
        let report = StudyReport(
            title: title ?? "KVScope study: \(dir.standardizedFileURL.lastPathComponent)", folder: folder, results: results,
            provenance: provenance, maps: maps, explore: explore, extraProblems: extra,
            generator: "kvscope \(KVScope.version)")
        let html: String
        do { html = try report.html() } catch { throw CLIError("\(folder): cannot draw a figure (\(error))") }
        let parent = out.deletingLastPathComponent()
        do { try fm.createDirectory(at: parent, withIntermediateDirectories: true) } catch {
            throw CLIError("--output \(out.path): cannot create folder \(parent.path)")
        }
        try writeOutput(Data(html.utf8), to: out.path, flag: "--output")
        print("wrote \(out.path) (\(html.utf8.count / 1024) KB)")
    }

    /// `--trace` paths by content hash.
    func movedTraces() throws -> [String: (path: String, source: any TraceSource)] {
        try RenderSupport.tracesByHash(traces, mapping: BareArrayMapping())
    }

    /// The trace of `t`, from `--trace` or the path the run recorded, with what the page says about it.
    func open(_ t: TraceStudy, recorded: String?, moved: [String: (path: String, source: any TraceSource)]) -> (
        TraceProvenance, (any TraceSource)?
    ) {
        var prov = TraceProvenance(name: t.name, hash: t.hash, path: recorded)
        var source: (any TraceSource)?
        if let m = moved[t.hash] {
            source = m.source
            prov.facts.append(("read from", m.path))
        } else if let recorded {
            if !FileManager.default.fileExists(atPath: recorded) {
                prov.warnings.append(
                    "trace not found at \(recorded): its provenance, retention maps and patch grids are left out (give its new place with --trace)"
                )
            } else {
                do {
                    let s = try TraceLoader.open(recorded)
                    if s.info.contentHash == t.hash {
                        source = s
                    } else {
                        prov.warnings.append(
                            "the trace at \(recorded) has changed since the run (content hash \(s.info.contentHash), the run's \(t.hash)): its retention maps and patch grids are left out"
                        )
                    }
                } catch {
                    prov.warnings.append("trace at \(recorded) cannot be read (\(error)): its retention maps and patch grids are left out")
                }
            }
        } else {
            prov.warnings.append(
                "the run recorded no path for this trace: its provenance, retention maps and patch grids are left out (give it with --trace)"
            )
        }
        guard let info = source?.info else { return (prov, nil) }
        let sh = info.shape
        prov.facts.insert(("model", info.modelName.isEmpty ? "not recorded" : info.modelName), at: 0)
        prov.facts.append(
            (
                "shape",
                "\(sh.layers) layers (\(info.recordedLayers.count) recorded), \(sh.queryHeads) query heads over \(sh.kvHeads) KV heads, head_dim \(sh.headDim), \(sh.seqLen) tokens, prefill \(sh.prefillLen), query rows \(sh.queryRows.lowerBound)..<\(sh.queryRows.upperBound)"
            ))
        if !info.images.isEmpty {
            prov.facts.append(
                (
                    "images",
                    info.images.map { img in
                        "\(img.isPseudo || info.syntheticImageTokens ? "pseudo-image" : "image") \(img.id): \(img.grid) at \(img.positions.lowerBound)..<\(img.positions.upperBound)"
                    }.joined(separator: "; ")
                ))
        }
        for key in ["notes", "recorder"] {
            if let v = info.extras[key], !v.isEmpty { prov.facts.append((key, v.count > 400 ? String(v.prefix(400)) + " …" : v)) }
        }
        if RenderSupport.hasPseudoImages(info) {
            prov.warnings.append(
                "pseudo-image tokens: its image spans are text tokens standing in for images (synthetic_image_tokens), so every image result is about those tokens, not about a vision encoder's patches"
            )
        }
        return (prov, source)
    }

    /// Retention maps and patch grids of `t` at the chosen budget, replayed from the trace with
    /// the run's policies (each with its first parameter setting in the results) and first fidelity;
    /// the full cache, which keeps everything, is left out.
    func traceMaps(_ t: TraceStudy, source: (any TraceSource)?) throws -> TraceMaps? {
        let budgets = t.budgets
        guard let b = budget ?? (budgets.isEmpty ? nil : budgets[(budgets.count - 1) / 2]) else {
            return TraceMaps(
                budget: nil, notes: ["No retention map or patch grid: the run has no budget fraction to pick one from; give --budget b."])
        }
        var maps = TraceMaps(budget: b)
        guard let source else {
            maps.notes.append("No retention map or patch grid: the trace is not available (see What was run).")
            return maps
        }
        let fidelity = t.fidelities.first ?? "code"
        var configurations: [PolicyConfiguration] = []
        var recentShare = 0.5
        for c in t.cells where c.fidelity == fidelity && !c.isFullCache && !configurations.contains(where: { $0.label == c.policy }) {
            configurations.append(c.configuration)
            if c.budget == b, let s = c.recentShare { recentShare = s }
        }
        guard !configurations.isEmpty else {
            maps.notes.append("No retention map: the run has no policy other than the full cache."); return maps
        }
        let options = KVPolicies.PolicyOptions(fidelity: Fidelity(rawValue: fidelity) ?? .code)
        let spec = BudgetSpec.fraction(b, recentShare: recentShare)
        let info = source.info
        let layers = info.recordedLayers
        // All policies in one pass over the layers; when one cannot run on this trace, each on its own.
        var runs: [PolicyRun]
        do {
            runs = try RenderSupport.decide(
                configurations, source: source, layers: layers, budget: spec, options: options,
                progress: "report: replaying \(info.name)")
        } catch {
            runs = []
            for c in configurations {
                do {
                    runs += try RenderSupport.decide(
                        [c], source: source, layers: layers, budget: spec, options: options, progress: "report: replaying \(c.label)")
                } catch {
                    maps.notes.append("\(c.label) is left out of the maps: \(error)")
                }
            }
            guard !runs.isEmpty else { return maps }
        }
        let fid = options.fidelity
        let note =
            budgets.contains(b)
            ? [] : ["budget \(Format.number(b)) is not one of the run's budgets (\(budgets.map(Format.number).joined(separator: ", ")))"]
        maps.notes += note
        maps.figures.append(
            ReportFigure(
                .figure(RetentionCommand.figure(runs: runs, info: info, layers: layers, budget: spec, fidelity: fid, title: { $0 })),
                caption:
                    "Retention map at budget \(Format.number(b)): for each policy, layers (rows) × positions, coloured by the fraction of KV heads keeping each position; positions ≥ P are generated and always kept."
            ))
        if PatchesCommand.grids(info).isEmpty {
            maps.notes.append("No patch grid: the trace has no image spans.")
        } else {
            maps.figures.append(
                ReportFigure(
                    .figure(PatchesCommand.figure(runs: runs, info: info, layers: layers, budget: spec, fidelity: fid, title: { $0 })),
                    caption:
                        "Per-image patch grids at budget \(Format.number(b)): each patch coloured by the fraction of (layer, KV head) pairs that keep it, one row per policy."
                ))
        }
        return maps
    }

    /// The explorer's ratio maps beside the results: `*ratio*.svg` inline, `*ratio*.png` as data, in name order.
    func ratioMaps(in dir: URL, notes: inout [String]) -> [ReportFigure] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
        var out: [ReportFigure] = []
        let cap = 4 << 20
        for n in names where n.lowercased().contains("ratio") && !n.hasPrefix(".") {
            let ext = (n as NSString).pathExtension.lowercased()
            guard ext == "svg" || ext == "png" else { continue }
            let url = dir.appendingPathComponent(n)
            let size = ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? Int) ?? 0
            guard size <= cap else { notes.append("\(n) left out: \(size >> 20) MB is more than a page should carry (4 MB)"); continue }
            guard let data = try? Data(contentsOf: url) else { notes.append("\(n) left out: cannot read it"); continue }
            let pngMagic: [UInt8] = [0x89, 0x50, 0x4E, 0x47]
            if ext == "png" {
                guard Array(data.prefix(4)) == pngMagic else { notes.append("\(n) left out: not a PNG file"); continue }
                out.append(ReportFigure(.png(data), caption: n))
            } else {
                let text = String(decoding: data, as: UTF8.self)
                guard text.contains("<svg") else { notes.append("\(n) left out: not an SVG file"); continue }
                let lower = text.lowercased()
                guard !lower.contains("<script"), !lower.contains("href=\"http"), !lower.contains("href='http") else {
                    notes.append("\(n) left out: it runs a script or loads something from the network"); continue
                }
                out.append(ReportFigure(.svg(text), caption: n))
            }
        }
        return out
    }
}
