import Foundation
import KVCairo
import KVPlot
import KVPolicies
import KVSimulator

/// What the report says about one trace before its results: where it came from and what to
/// keep in mind when reading them.
public struct TraceProvenance: Sendable {
    public var name: String
    public var hash: String
    /// The path the run recorded, if any.
    public var path: String?
    /// Facts read from the trace file (model, shape, images, recorder, notes), in display order;
    /// empty when the trace was not found.
    public var facts: [(String, String)]
    /// Warnings shown in a box: pseudo-image tokens, trace not found, trace changed since the run.
    public var warnings: [String]

    public init(name: String, hash: String, path: String? = nil, facts: [(String, String)] = [], warnings: [String] = []) {
        self.name = name; self.hash = hash; self.path = path; self.facts = facts; self.warnings = warnings
    }
}

/// A figure of the report: a KVPlot figure (rendered to inline SVG by KVCairo), an SVG document
/// found beside the results, or a PNG found there (inlined as a `data:` URI).
public struct ReportFigure: Sendable {
    public enum Content: Sendable {
        case figure(Figure)
        case svg(String)
        case png(Data)
    }

    public var content: Content
    /// What the figure shows; also the image's accessible name.
    public var caption: String
    /// Drawn at half the page width (two side by side) on wide screens.
    public var half: Bool

    public init(_ content: Content, half: Bool = false, caption: String) {
        self.content = content; self.half = half; self.caption = caption
    }
}

/// The trace-dependent figures of one trace: retention maps and patch grids at one budget.
public struct TraceMaps: Sendable {
    /// The budget the maps show; nil when there is none to show (the run has no fraction budget).
    public var budget: Double?
    public var figures: [ReportFigure]
    /// Why some or all maps are absent (trace not found, no image spans, …).
    public var notes: [String]

    public init(budget: Double?, figures: [ReportFigure] = [], notes: [String] = []) {
        self.budget = budget; self.figures = figures; self.notes = notes
    }
}

/// An explore folder's part: the safe settings table and the ratio maps beside it.
public struct ExploreSection: Sendable {
    public var file: String
    public var table: ExploreTable
    public var figures: [ReportFigure]
    public var notes: [String]

    public init(file: String, table: ExploreTable, figures: [ReportFigure] = [], notes: [String] = []) {
        self.file = file; self.table = table; self.figures = figures; self.notes = notes
    }
}

/// The study report: one self-contained HTML page (inline CSS and SVG, no script, no external
/// reference) built from a sweep's results, its traces' provenance and its figures.
///
/// Sections, in order: what was run (command line, versions, traces with hashes and warnings,
/// policies with their settings), one part per trace (summary table, every series, budget curves,
/// retention maps and patch grids), the explorer's cheapest safe settings when present, missing and
/// degenerate cells with their reasons, and every metric's definition.
///
/// Deterministic: the same inputs give the same bytes (no clock is read; figure ids are numbered
/// in page order). Text in figures is drawn as plain paths (``GlyphPaths``), which keeps a page of
/// many figures quick to open.
public struct StudyReport: Sendable {
    public var title: String
    /// The folder the report was made from, as given.
    public var folder: String
    public var results: SweepResults
    public var study: Study
    /// By trace hash.
    public var provenance: [String: TraceProvenance]
    /// By trace hash.
    public var maps: [String: TraceMaps]
    public var explore: ExploreSection?
    /// Problems found outside the rows (trace not found, unreadable metadata, …), listed first.
    public var extraProblems: [Problem]
    /// `kvscope 0.1.0`: what wrote the report.
    public var generator: String

    public init(
        title: String, folder: String, results: SweepResults, provenance: [String: TraceProvenance] = [:],
        maps: [String: TraceMaps] = [:], explore: ExploreSection? = nil, extraProblems: [Problem] = [], generator: String
    ) {
        self.title = title; self.folder = folder; self.results = results; self.study = Study(rows: results.rows)
        self.provenance = provenance; self.maps = maps; self.explore = explore; self.extraProblems = extraProblems
        self.generator = generator
    }

    /// Every problem the page lists: `extraProblems`, then those of the rows.
    public var problems: [Problem] { extraProblems + study.problems(expected: results.metadata) }

    /// The series of the summary table: the scores and sizes a reader compares first. The others
    /// (`kept_tokens`, `cache_bytes`, per-modality and per-image retention) are in the table of every series.
    public static func isHeadline(_ s: SeriesID) -> Bool {
        !(s.metric == "kept_tokens" || s.metric == "cache_bytes" || s.metric.hasPrefix("retention_") || s.metric == "image_retention")
    }

    /// The page.
    public func html() throws -> String {
        var page = Page()
        var m = Markup()
        m.raw("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
        m.raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
        m.raw("<meta name=\"generator\" content=\"\(Markup.escape(generator))\">\n")
        m.element("title", text: title)
        m.line()
        m.raw("<style>\n\(Style.css)\n</style>\n</head>\n<body>\n")
        var main = Markup()
        header(&main)
        contents(&main)
        run(&main)
        for t in study.traces { try trace(t, &main, &page) }
        if let e = explore { try exploreSection(e, &main, &page) }
        problemsSection(&main)
        definitions(&main)
        m.raw("<main>\n")
        m.raw(main.html)
        m.element("footer") { f in
            f.text(
                "Written by \(generator) report from \(folder). Self-contained: styles and figures are inline; the page runs no script and loads nothing."
            )
        }
        m.raw("\n</main>\n</body>\n</html>\n")
        return m.html
    }

    /// Numbering of figures, for ids that are unique in the page.
    struct Page {
        var figures = 0
        mutating func nextPrefix() -> String { figures += 1; return "f\(figures)-" }
    }

    // MARK: - Sections

    func header(_ m: inout Markup) {
        m.element("header") { h in
            h.element("h1", text: title)
            let traces = study.traces.count
            let cells = study.traces.reduce(0) { $0 + $1.cells.count }
            let policies = Set(study.traces.flatMap { $0.cells.map(\.policy) }).count
            h.element(
                "p", [("class", "muted")],
                text:
                    "\(traces) trace\(traces == 1 ? "" : "s"), \(policies) polic\(policies == 1 ? "y" : "ies"), \(cells) combination\(cells == 1 ? "" : "s"), \(results.rows.count) result rows, from \(folder)"
            )
        }
        m.line()
    }

    func contents(_ m: inout Markup) {
        m.element("nav", [("aria-label", "contents")]) { n in
            n.element("ol") { o in
                o.raw("<li><a href=\"#run\">What was run</a></li>")
                for (i, t) in study.traces.enumerated() {
                    o.raw("<li><a href=\"#trace-\(i + 1)\">")
                    o.text("Trace \(t.name)")
                    o.raw("</a></li>")
                }
                if explore != nil { o.raw("<li><a href=\"#explore\">Cheapest safe settings</a></li>") }
                o.raw("<li><a href=\"#problems\">Missing and degenerate cells</a></li>")
                o.raw("<li><a href=\"#metrics\">Metric definitions</a></li>")
            }
        }
        m.line()
    }

    func run(_ m: inout Markup) {
        m.element("section", [("id", "run")]) { s in
            s.element("h2", text: "What was run")
            s.element("dl", [("class", "kv")]) { d in
                func item(_ k: String, _ v: String, code: Bool = false) {
                    d.element("dt", text: k)
                    d.element("dd") { dd in code ? dd.element("code", text: v) : dd.text(v) }
                }
                if let md = results.metadata {
                    item("command line", md.commandLine.map(Self.shellQuote).joined(separator: " "), code: true)
                    item("KVScope version", md.kvscopeVersion + " (the run); report by \(generator)")
                    item("fidelity", md.fidelities.joined(separator: ", "))
                    item("budgets", md.budgets.map { $0.replacingOccurrences(of: ";", with: ", ") }.joined(separator: " · "))
                    item("metrics", md.metrics.joined(separator: ", "))
                    item(
                        "top-k / proxy window",
                        "k = \(md.topK) for topk_recall; W = \(md.proxyWindow) proxy rows when a trace has no future rows")
                    item("result rows", "\(md.rowCount)")
                } else {
                    item("run metadata", results.metadataProblem ?? "absent", code: false)
                    item("report by", generator)
                }
            }
            s.element("h3", text: "Traces")
            s.element("div", [("class", "scroll")]) { d in
                d.element("table", [("class", "prov")]) { t in
                    t.raw(
                        "<thead><tr><th>trace</th><th>content hash</th><th>path (as run)</th><th>P</th><th>evaluation rows</th><th>provenance</th></tr></thead><tbody>"
                    )
                    for tr in study.traces {
                        let p = provenance[tr.hash]
                        t.element("tr") { r in
                            r.element("td", text: tr.name)
                            r.element("td") { $0.element("code", text: tr.hash) }
                            r.element("td") { $0.element("code", text: p?.path ?? "not recorded") }
                            r.element("td", [("class", "num")], text: "\(tr.compressionPoint)")
                            r.element(
                                "td",
                                text: "\(tr.evalRowCount) \(tr.evalRows.rawValue)"
                                    + (tr.evalRows == .proxy ? " (last prefill rows, which also fed the scores)" : ""))
                            r.element("td") { c in
                                for (k, v) in p?.facts ?? [] {
                                    c.element("div") { line in
                                        line.element("span", [("class", "muted")], text: k + ": "); line.text(v)
                                    }
                                }
                            }
                        }
                    }
                    t.raw("</tbody>")
                }
            }
            for tr in study.traces {
                for w in provenance[tr.hash]?.warnings ?? [] {
                    s.element("p", [("class", "warn")]) { p in
                        p.element("strong", text: tr.name + ": "); p.text(w)
                    }
                }
            }
            s.element("h3", text: "Policies")
            s.element("div", [("class", "scroll")]) { d in
                d.element("table") { t in
                    t.raw(
                        "<thead><tr><th>policy</th><th>settings (parameters, registry defaults included)</th><th>fidelity</th><th>what it does</th></tr></thead><tbody>"
                    )
                    var seen = Set<String>()
                    for c in study.traces.flatMap(\.cells) where seen.insert(c.policy + "|" + c.params + "|" + c.fidelity).inserted {
                        t.element("tr") { r in
                            r.element("td", [("class", "pol")]) { Self.policyName(c.policy, base: c.base, merge: c.merge, &$0) }
                            r.element("td") {
                                $0.element("code", text: c.params.isEmpty ? "—" : c.params.replacingOccurrences(of: ";", with: ", "))
                            }
                            r.element("td", text: c.fidelity)
                            let conf = c.configuration
                            r.element(
                                "td",
                                text: (PolicyRegistry.declaration(conf.id)?.summary ?? "")
                                    + (conf.merge.map { "; merged (\($0.rawValue))" } ?? ""))
                        }
                    }
                    t.raw("</tbody>")
                }
            }
        }
        m.line()
    }

    func trace(_ t: TraceStudy, _ m: inout Markup, _ page: inout Page) throws {
        let index = (study.traces.firstIndex { $0.hash == t.hash } ?? 0) + 1
        let p = provenance[t.hash]
        var body = Markup()
        body.element("h2", text: "Trace \(t.name)")
        for w in p?.warnings ?? [] { body.element("p", [("class", "warn")], text: w) }
        body.element("h3", text: "Summary")
        summaryTable(t, &body, headline: true)
        body.element("details") { d in
            d.element("summary", text: "Every series (\(t.series.count))")
            summaryTable(t, &d, headline: false)
        }
        body.element("h3", text: "Budget curves")
        let pseudo = (p?.warnings ?? []).contains { $0.contains("pseudo-image") }
        var curves: [ReportFigure] = []
        for s in t.curveSeries {
            let imageMetric = s.metric.contains("image")
            let notes = pseudo && imageMetric ? ["pseudo-image tokens: the \"images\" are text tokens standing in for images"] : []
            if let f = t.curvesFigure(s, notes: notes) {
                curves.append(
                    ReportFigure(
                        .figure(f), half: true,
                        caption: "\(s.label) against the kept ratio, one line per policy. "
                            + (MetricCatalogue.metricType(of: s.metric)?.preference == .lower ? "Lower is better." : "Higher is better.")))
            }
        }
        if curves.isEmpty { body.element("p", [("class", "muted")], text: "No scored metric has values in this trace.") }
        try figures(curves, &body, &page)
        if let maps = maps[t.hash] {
            body.element("h3", text: "What each policy keeps" + (maps.budget.map { " at budget \(Format.number($0))" } ?? ""))
            for n in maps.notes { body.element("p", [("class", "warn")], text: n) }
            try figures(maps.figures, &body, &page)
        }
        m.element("section", [("id", "trace-\(index)")]) { $0.raw(body.html) }
        m.line()
    }

    /// A policy × setting table of `t`: the headline series, or every series.
    func summaryTable(_ t: TraceStudy, _ m: inout Markup, headline: Bool) {
        let cols = t.series.filter { !headline || Self.isHeadline($0) }
        let full = t.cells.first { $0.isFullCache }
        m.element("div", [("class", "scroll")]) { d in
            d.element("table", [("class", headline ? "summary" : "series"), ("data-trace", t.name)]) { tb in
                tb.element("caption") { c in
                    c.text(
                        headline
                            ? "Values over all layers (mean over layers with equal weights; cache_bytes summed). ★ marks the best value in each column at each setting among the compared policies; the full cache and the oracle (shaded, in italics) are references and are not ranked. Compare C_act too: a policy that keeps more than C (text-prior keeps every text token) is not on equal terms. ↑ higher is better, ↓ lower is better; — omitted (hover for the reason, and see Missing and degenerate cells); † defined on only some layers."
                            : "Every metric series the run wrote, over all layers.")
                }
                tb.raw(
                    "<thead><tr><th>setting</th><th>policy</th><th title=\"nominal budget C and mean actual kept count C_act (over layers and KV heads)\">C / C_act</th>"
                )
                for s in cols {
                    let arrow = s.preference == .higher ? " ↑" : s.preference == .lower ? " ↓" : ""
                    tb.element(
                        "th", [("title", MetricCatalogue.metricType(of: s.metric).map { $0.definition } ?? "")], text: s.label + arrow)
                }
                tb.raw("</tr></thead>")
                // The full cache: once, from the run, else from the definitions.
                tb.raw("<tbody>")
                tb.element("tr", [("class", "ref")]) { r in
                    r.element("th", [("scope", "row")], text: "any")
                    if let full {
                        r.element("td", [("class", "pol")]) { Self.policyName("full", &$0) }
                        r.element("td", [("class", "num")], text: "\(full.compressionPoint) / \(Format.tokens(full.actualTokens))")
                        for s in cols { cell(full, s, best: false, &r) }
                    } else {
                        r.element("td", text: "full cache (by definition; not in the run)")
                        r.element("td", [("class", "num")], text: "P = \(t.compressionPoint)")
                        for s in cols {
                            if let v = s.fullCacheValue {
                                r.element("td", [("class", "num")], text: Format.value(v, metric: s.metric))
                            } else {
                                r.element("td", [("class", "na")], text: "—")
                            }
                        }
                    }
                }
                tb.raw("</tbody>")
                for setting in t.settings {
                    let group = t.cells.filter { $0.budgetSpec == setting && !$0.isFullCache }
                    guard !group.isEmpty else { continue }
                    let ranked = group.filter { !$0.isReference }
                    var best: [SeriesID: Double] = [:]
                    for s in cols where s.preference != .neither {
                        let vs = ranked.compactMap { $0.value(s) }
                        if ranked.count > 1, let b = s.preference == .higher ? vs.max() : vs.min() { best[s] = b }
                    }
                    let ordered = group.filter(\.isReference) + group.filter { !$0.isReference }
                    tb.raw("<tbody>")
                    for (i, c) in ordered.enumerated() {
                        tb.element("tr", [("class", c.isReference ? "ref" : nil)]) { r in
                            if i == 0 {
                                r.element("th", [("scope", "rowgroup"), ("rowspan", "\(ordered.count)")], text: c.settingLabel)
                            }
                            r.element("td", [("class", "pol")]) { d in
                                Self.policyName(c.policy, base: c.base, merge: c.merge, &d)
                                let extra =
                                    t.label(c).dropFirst(c.policy.count).split(separator: "@").first.map {
                                        $0.trimmingCharacters(in: .whitespaces)
                                    } ?? ""
                                if !extra.isEmpty { d.element("span", [("class", "muted")], text: " " + extra) }
                            }
                            // A combination that could not run has no kept count (its rows store 0).
                            let ran = c.value(SeriesID("kept_tokens")) != nil || c.actualTokens > 0
                            r.element("td", [("class", "num")], text: "\(c.nominalTokens) / \(ran ? Format.tokens(c.actualTokens) : "—")")
                            for s in cols {
                                let v = c.value(s)
                                let isBest = !c.isReference && v != nil && best[s].map { abs($0 - v!) <= 1e-12 * max(1, abs($0)) } == true
                                cell(c, s, best: isBest, &r)
                            }
                        }
                    }
                    tb.raw("</tbody>")
                }
            }
        }
    }

    func cell(_ c: StudyCell, _ s: SeriesID, best: Bool, _ r: inout Markup) {
        guard let v = c.values[s] else {
            r.element("td", [("class", "na"), ("title", "not measured in this combination")], text: "—"); return
        }
        guard let x = v.value else { r.element("td", [("class", "na"), ("title", v.note ?? "no value")], text: "—"); return }
        let text = Format.value(x, metric: s.metric) + (v.isPartial ? " †" : "") + (best ? " ★" : "")
        let title = v.isPartial ? "defined on \(v.layersDefined) of \(v.layers) layers; the others: \(v.layerNote ?? "no value")" : nil
        r.element("td", [("class", best ? "num best" : "num"), ("title", title)], text: text)
    }

    func exploreSection(_ e: ExploreSection, _ m: inout Markup, _ page: inout Page) throws {
        var body = Markup()
        body.element("h2", text: "Cheapest safe settings")
        body.element(
            "p", text: "From \(e.file): the settings the explorer found safe, and among them the cheapest (marked in its cheapest column).")
        for n in e.notes { body.element("p", [("class", "warn")], text: n) }
        func table(_ rows: [[String]], _ m: inout Markup, caption: String) {
            m.element("div", [("class", "scroll")]) { d in
                d.element("table", [("class", "explore")]) { t in
                    t.element("caption", text: caption)
                    t.raw("<thead><tr>")
                    for h in e.table.header { t.element("th", text: h) }
                    t.raw("</tr></thead><tbody>")
                    for r in rows {
                        t.element("tr", [("class", e.table.isCheapest(r) ? "best" : nil)]) { tr in
                            for v in r { tr.element("td", [("class", Double(v) != nil ? "num" : nil)], text: v) }
                        }
                    }
                    t.raw("</tbody>")
                }
            }
        }
        let cheapest = e.table.cheapest
        if cheapest.isEmpty {
            body.element(
                "p", [("class", "muted")],
                text: e.table.cheapestColumn == nil
                    ? "The file has no cheapest column; every safe setting is listed below."
                    : "No row is marked cheapest.")
        } else {
            table(cheapest, &body, caption: "The cheapest safe setting(s): \(cheapest.count) row\(cheapest.count == 1 ? "" : "s").")
        }
        if e.table.rows.isEmpty {
            body.element("p", [("class", "muted")], text: "The file lists no safe setting.")
        } else {
            body.element("details", [("open", cheapest.isEmpty ? "" : nil)]) { d in
                d.element("summary", text: "Every safe setting (\(e.table.rows.count))")
                table(e.table.rows, &d, caption: "All rows of \(e.file), in file order.")
            }
        }
        if !e.figures.isEmpty {
            body.element("h3", text: "Ratio maps")
            try figures(e.figures, &body, &page)
        }
        m.element("section", [("id", "explore")]) { $0.raw(body.html) }
        m.line()
    }

    func problemsSection(_ m: inout Markup) {
        let all = problems
        m.element("section", [("id", "problems")]) { s in
            s.element("h2", text: "Missing and degenerate cells")
            guard !all.isEmpty else {
                s.element("p", text: "None: every combination the run asked for has rows, and every metric has a value over all layers.")
                return
            }
            s.element("div", [("class", "scroll")]) { d in
                d.element("table", [("class", "problems")]) { t in
                    t.raw("<thead><tr><th>kind</th><th>trace</th><th>metric</th><th>reason</th><th>cells</th></tr></thead><tbody>")
                    for p in all {
                        t.element("tr") { r in
                            r.element("td", text: p.kind.rawValue)
                            r.element("td", text: p.trace)
                            r.element("td", text: p.series ?? "—")
                            r.element("td", text: p.reason)
                            r.element("td", text: p.cells.isEmpty ? "—" : Self.cellList(p.cells))
                        }
                    }
                    t.raw("</tbody>")
                }
            }
        }
        m.line()
    }

    func definitions(_ m: inout Markup) {
        m.element("section", [("id", "metrics")]) { s in
            s.element("h2", text: "Metric definitions")
            s.element(
                "p",
                text:
                    "Notation: P is the compression point (the end of prefill unless the run chose another), S_g the slots KV head g keeps after compression, A[h,i,j] the recorded attention of query head h, row i, on key j (after softmax), C the nominal budget in tokens and C_act the count actually kept."
            )
            s.element("p", text: MetricCatalogue.averaging)
            // Flow rows (merge_flow) are no table series, but they are in the run.
            let present = Set(study.traces.flatMap { $0.series.map { MetricCatalogue.family(of: $0.metric) } })
                .union(results.rows.lazy.filter { $0.source != nil }.map { MetricCatalogue.family(of: $0.metric) })
            s.element("dl", [("class", "defs")]) { d in
                for metric in MetricCatalogue.all {
                    let type = Swift.type(of: metric)
                    d.element(
                        "dt", [("id", "metric-" + type.id.replacingOccurrences(of: "<", with: "").replacingOccurrences(of: ">", with: ""))],
                        text: type.id)
                    d.element("dd") { dd in
                        dd.text(type.definition)
                        let pref = type.preference == .higher ? " Higher is better." : type.preference == .lower ? " Lower is better." : ""
                        dd.text(pref)
                        if !present.contains(type.id) { dd.element("span", [("class", "muted")], text: " (not in this run)") }
                    }
                }
            }
        }
        m.line()
    }

    // MARK: - Pieces

    func figures(_ list: [ReportFigure], _ m: inout Markup, _ page: inout Page) throws {
        guard !list.isEmpty else { return }
        var body = Markup()
        for f in list {
            let prefix = page.nextPrefix()
            let markup: String
            switch f.content {
            case .figure(let fig): markup = GlyphPaths.inline(try svgMarkup(fig, idPrefix: prefix))
            case .svg(let text): markup = GlyphPaths.inline(inlineSVG(text, idPrefix: prefix))
            case .png(let data):
                markup = "<img alt=\"\(Markup.escape(f.caption))\" src=\"data:image/png;base64,\(data.base64EncodedString())\">"
            }
            body.element("figure", [("class", f.half ? "half" : nil)]) { fig in
                fig.raw(markup)
                fig.element("figcaption", text: f.caption)
            }
            body.line()
        }
        m.element("div", [("class", "figs")]) { $0.raw(body.html) }
        m.line()
    }

    /// The policy id with its line colour (its declaration's, as in the figures) as a swatch.
    static func policyName(_ id: String, base: String? = nil, merge: String = "none", _ m: inout Markup) {
        let color = PolicyStyle.of(base: base ?? id, merge: merge).color
        m.element("span", [("class", "swatch"), ("style", "background:\(color)")]) { _ in }
        m.element("code", text: id)
    }

    /// `a @ 0.1, 0.2; b @ 0.1` from `a @ 0.1`, `a @ 0.2`, `b @ 0.1`.
    static func cellList(_ cells: [String]) -> String {
        var order: [String] = []
        var settings: [String: [String]] = [:]
        for c in cells {
            let parts = c.components(separatedBy: " @ ")
            let who = parts.first ?? c, at = parts.count > 1 ? parts.dropFirst().joined(separator: " @ ") : ""
            if settings[who] == nil { order.append(who) }
            settings[who, default: []].append(at)
        }
        return order.map { w in
            let s = settings[w]!.filter { !$0.isEmpty }
            return s.isEmpty ? w : "\(w) @ \(s.joined(separator: ", "))"
        }.joined(separator: "; ")
    }

    /// A word as a POSIX shell would need it quoted.
    static func shellQuote(_ s: String) -> String {
        guard !s.isEmpty else { return "''" }
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%")
        if s.allSatisfy(safe.contains) { return s }
        return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
