import Foundation
import KVPlot
import KVPolicies
@testable import KVReport
import KVSimulator
import Testing

/// Result rows of a made-up sweep: one trace, `policies` × `budgets`, two layers, with the values
/// `value(policy, budget, metric, layer)` (nil = omitted with `note`).
func rows(
    policies: [String], budgets: [Double], metrics: [String],
    value: (String, Double, String, Int) -> Double?, note: String = "needs tensor 'q'"
) -> [ResultRow] {
    var out: [ResultRow] = []
    for p in policies {
        for b in budgets {
            for m in metrics {
                var layerValues: [Double?] = []
                for l in 0 ..< 2 {
                    let v = value(p, b, m, l)
                    layerValues.append(v)
                    out.append(row(p, b, m, layer: l, v, note: v == nil ? note : nil))
                }
                let defined = layerValues.compactMap { $0 }
                let all = defined.isEmpty ? nil : defined.reduce(0, +) / Double(defined.count)
                out.append(row(p, b, m, layer: nil, all, note: all == nil ? note : nil))
            }
        }
    }
    return out
}

func row(_ p: String, _ b: Double, _ m: String, layer: Int?, _ v: Double?, note: String?) -> ResultRow {
    ResultRow(
        trace: "toy", traceHash: "hash-toy", configuration: PolicyConfiguration(p), fidelity: "code",
        budget: .fraction(b, recentShare: 0.5), compressionPoint: 100, nominalTokens: Int(100 * b),
        actualTokens: 100 * b, metric: m, layer: layer, head: nil, image: nil, value: v,
        evalRows: .future, evalRowCount: 8, note: note)
}

/// Every `id="…"` value in `html`.
func ids(_ html: String) -> [String] {
    var out: [String] = []
    var rest = html[...]
    while let r = rest.range(of: " id=\"") {
        let after = rest[r.upperBound...]
        guard let end = after.firstIndex(of: "\"") else { break }
        out.append(String(after[..<end]))
        rest = after[end...]
    }
    return out
}

/// The `<tr>` of the summary table whose policy cell names `policy` within the `<tbody>` of `setting`.
func summaryRow(_ html: String, setting: String, policy: String) -> String? {
    guard let table = html.range(of: "<table class=\"summary\"") else { return nil }
    let body = html[table.upperBound...]
    guard let group = body.range(of: ">\(setting)</th>"),
        let open = body[..<group.lowerBound].range(of: "<tbody>", options: .backwards)
    else { return nil }
    let after = body[open.upperBound...]
    let end = after.range(of: "</tbody>")?.lowerBound ?? after.endIndex
    let chunk = String(after[..<end])
    let start = chunk.range(of: "<code>\(policy)</code>")
    guard let start else { return nil }
    let rowStart = chunk[..<start.lowerBound].range(of: "<tr", options: .backwards)?.lowerBound ?? chunk.startIndex
    let rowEnd = chunk[start.upperBound...].range(of: "</tr>")?.upperBound ?? chunk.endIndex
    return String(chunk[rowStart ..< rowEnd])
}

@Suite("KVReport")
struct ReportTests {
    @Test func escapingCoversTextAndAttributes() {
        #expect(
            Markup.escape(#"<b a="x">Tom's & "Jerry" &amp;</b>"#)
                == "&lt;b a=&quot;x&quot;&gt;Tom&#39;s &amp; &quot;Jerry&quot; &amp;amp;&lt;/b&gt;")
        var m = Markup()
        m.element("td", [("title", "a\"<>"), ("class", nil), ("open", "")], text: "<script>")
        #expect(m.html == "<td title=\"a&quot;&lt;&gt;\" open>&lt;script&gt;</td>")
    }

    @Test func studyGroupsRowsIntoCellsAndSeesPartialLayers() throws {
        let r = rows(policies: ["h2o", "lookm"], budgets: [0.1, 0.2], metrics: ["attention_recall", "output_error"]) { p, b, m, l in
            if m == "output_error" && p == "lookm" && l == 1 { return nil }
            return m == "attention_recall" ? 0.5 + b + (p == "h2o" ? 0.01 : 0) : 0.3 - b
        }
        let s = Study(rows: r)
        #expect(s.traces.count == 1)
        let t = s.traces[0]
        #expect(t.cells.count == 4)
        #expect(t.series == [SeriesID("attention_recall"), SeriesID("output_error")])
        #expect(t.settings == ["fraction=0.1;recent_share=0.5", "fraction=0.2;recent_share=0.5"])
        let lookm = try #require(t.cells.first { $0.policy == "lookm" && $0.budget == 0.2 })
        let err = try #require(lookm.values[SeriesID("output_error")])
        #expect(err.isPartial && err.layers == 2 && err.layersDefined == 1)
        #expect(abs(err.value! - 0.1) < 1e-12)
        let h2o = try #require(t.cells.first { $0.policy == "h2o" && $0.budget == 0.1 })
        #expect(abs(h2o.value(SeriesID("attention_recall"))! - 0.61) < 1e-12)
        #expect(h2o.values[SeriesID("output_error")]!.isPartial == false)
    }

    @Test func bestValuesAreMarkedPerSettingAmongComparedPoliciesOnly() throws {
        // oracle is best everywhere but is a reference; h2o beats lookm on recall at 0.1, lookm wins at 0.2;
        // output_error is lower-is-better.
        let r = rows(policies: ["full", "oracle", "h2o", "lookm"], budgets: [0.1, 0.2], metrics: ["attention_recall", "output_error"]) {
            p, b, m, _ in
            switch (p, m) {
            case ("full", "attention_recall"): return 1
            case ("full", _): return 0
            case ("oracle", "attention_recall"): return 0.99
            case ("oracle", _): return 0.001
            case ("h2o", "attention_recall"): return b == 0.1 ? 0.8 : 0.85
            case ("h2o", _): return 0.2
            case ("lookm", "attention_recall"): return b == 0.1 ? 0.7 : 0.9
            default: return 0.3
            }
        }
        let html = try StudyReport(title: "t", folder: "dir", results: SweepResults(metadata: nil, rows: r), generator: "kvscope test")
            .html()
        let h2o01 = try #require(summaryRow(html, setting: "0.1", policy: "h2o"))
        let lookm01 = try #require(summaryRow(html, setting: "0.1", policy: "lookm"))
        let h2o02 = try #require(summaryRow(html, setting: "0.2", policy: "h2o"))
        let lookm02 = try #require(summaryRow(html, setting: "0.2", policy: "lookm"))
        let oracle01 = try #require(summaryRow(html, setting: "0.1", policy: "oracle"))
        #expect(h2o01.contains("0.8000 ★") && !lookm01.contains("0.7000 ★"))
        #expect(lookm02.contains("0.9000 ★") && !h2o02.contains("0.8500 ★"))
        #expect(h2o01.contains("0.2000 ★") && h2o02.contains("0.2000 ★") && !lookm01.contains("0.3000 ★"))
        #expect(!oracle01.contains("★") && oracle01.contains("class=\"ref\""))
        // The full cache is one reference row, not one per budget.
        #expect(html.components(separatedBy: "<code>full</code>").count - 1 == 3)  // summary, every series, policies table
    }

    @Test func problemsListMissingPartialDegenerateAndAbsentCells() throws {
        var r = rows(policies: ["h2o", "snapkv"], budgets: [0.1], metrics: ["kept_tokens", "attention_recall", "output_error"]) {
            p, _, m, l in
            if p == "snapkv" { return nil }
            if m == "output_error" { return l == 0 ? 0.2 : nil }
            return m == "kept_tokens" ? 0 : 0.5
        }
        r = r.map {
            var x = $0; if x.policy == "snapkv" { x.note = "needs the window rows" }; return x
        }
        let meta = SweepMetadata(
            kvscopeVersion: "0", commandLine: ["kvscope"], traces: [], policies: ["h2o", "snapkv", "tova"],
            budgets: ["fraction=0.1;recent_share=0.5"], fidelities: ["code"], metrics: [], topK: 16,
            proxyWindow: 32, rowCount: r.count)
        let problems = Study(rows: r).problems(expected: meta)
        let kinds = problems.map { "\($0.kind.rawValue) \($0.series ?? "-") \($0.cells.joined(separator: ","))" }
        #expect(kinds.contains("missing every metric snapkv @ 0.1"))
        #expect(kinds.contains("degenerate - h2o @ 0.1"))
        #expect(kinds.contains("partial output_error h2o @ 0.1"))
        #expect(kinds.contains("absent - tova @ 0.1"))
        #expect(problems.count == 4, "\(kinds)")
        let partial = try #require(problems.first { $0.kind == .partial })
        #expect(partial.reason.contains("1 of 2 layers") && partial.reason.contains("needs tensor 'q'"))
        let html = try StudyReport(title: "t", folder: "d", results: SweepResults(metadata: meta, rows: r), generator: "g").html()
        #expect(html.contains("needs the window rows") && html.contains("asked for by the run but has no rows"))
    }

    @Test("budget curves mark a drawn policy's settings without a value on the x axis, in the policy's declared style")
    func curvesMarkMissingSettings() throws {
        let r = rows(policies: ["h2o", "snapkv"], budgets: [0.1, 0.3, 0.5], metrics: ["kept_ratio", "attention_recall"]) { p, b, m, _ in
            if p == "snapkv" && b > 0.2 { return nil }
            return m == "kept_ratio" ? b : 0.5 + b
        }
        let t = try #require(Study(rows: r).traces.first)
        let fig = try #require(t.curvesFigure(SeriesID("attention_recall")))
        let chart = try #require(fig.panels[0].chart as? LineChart)
        let snap = try #require(chart.series.first { $0.label == "snapkv" })
        let h2o = try #require(chart.series.first { $0.label == "h2o" })
        #expect(snap.points.count == 1 && snap.missing == [0.3, 0.5])
        #expect(h2o.points.count == 3 && h2o.missing.isEmpty)
        #expect(snap.color == RGB(hex: try #require(PolicyRegistry.declaration("snapkv")).color))
    }

    @Test func pageIsSelfContainedDeterministicAndItsFigureIdsAreUnique() throws {
        let r = rows(
            policies: ["full", "h2o", "lookm"], budgets: [0.1, 0.2, 0.3], metrics: ["kept_ratio", "attention_recall", "output_error"]
        ) { p, b, m, _ in
            m == "kept_ratio" ? b : m == "attention_recall" ? min(1, 0.5 + b + (p == "lookm" ? 0.05 : 0)) : 0.4 - b
        }
        let extra = Figure(size: Size(200, 100), title: "an extra figure <&>")
        let maps = TraceMaps(budget: 0.2, figures: [ReportFigure(.figure(extra), caption: "extra")])
        let report = StudyReport(
            title: "Study <1>", folder: "dir", results: SweepResults(metadata: nil, rows: r), maps: ["hash-toy": maps],
            generator: "kvscope test")
        let a = try report.html(), b = try report.html()
        #expect(a == b)
        #expect(a.contains("<title>Study &lt;1&gt;</title>"))
        // Two budget curves (attention_recall, output_error) and the extra figure, all inline SVG.
        #expect(
            a.components(separatedBy: "<figure><svg ").count - 1 + a.components(separatedBy: "<figure class=\"half\"><svg ").count - 1 == 3)
        #expect(!a.contains("<img") && !a.contains("<script") && !a.contains("<link"))
        #expect(a.range(of: #"(src|href)\s*=\s*["']?\s*(https?:)?//"#, options: .regularExpression) == nil)
        let all = ids(a)
        #expect(!all.isEmpty && Set(all).count == all.count, "duplicate ids")
        #expect(all.contains { $0.hasPrefix("f1-") } && all.contains { $0.hasPrefix("f3-") })
        // Text is drawn as paths (no glyph symbols or <use>), and every reference resolves to an id of the page.
        let defined = Set(all)
        #expect(!a.contains("<symbol") && !a.contains("<use xlink:href=\"#f1-glyph"))
        var refs = Set<String>()
        for part in a.components(separatedBy: "href=\"#").dropFirst() { refs.insert(String(part.prefix { $0 != "\"" })) }
        for part in a.components(separatedBy: "url(#").dropFirst() { refs.insert(String(part.prefix { $0 != ")" })) }
        #expect(!refs.isEmpty && refs.subtracting(defined).isEmpty, "unresolved: \(refs.subtracting(defined).sorted().prefix(5))")
    }

    @Test func everyMetricHasADefinitionAndThePagePrintsIt() throws {
        let r = rows(policies: ["h2o"], budgets: [0.2], metrics: ["attention_recall"]) { _, _, _, _ in 0.9 }
        let html = try StudyReport(title: "t", folder: "d", results: SweepResults(metadata: nil, rows: r), generator: "g").html()
        for m in MetricCatalogue.all {
            let type = type(of: m)
            #expect(type.definition.count > 40, "\(type.id)")
            #expect(html.contains(Markup.escape(type.definition)), "\(type.id)")
        }
        #expect(MetricCatalogue.metricType(of: "recall_image")?.id == "recall_<modality>")
        #expect(MetricCatalogue.metricType(of: "output_error")?.preference == .lower)
    }

    @Test func mergeFlowRowsAreNoTableCellsButCountAsInTheRun() throws {
        var r = rows(policies: ["lookm"], budgets: [0.2], metrics: ["attention_recall", "merge_flow"]) { _, _, _, _ in 0.5 }
        for i in r.indices where r[i].metric == "merge_flow" { r[i].source = "image 0"; r[i].target = i % 2 == 0 ? "text" : "dropped" }
        let report = try StudyReport(title: "t", folder: "d", results: SweepResults(metadata: nil, rows: r), generator: "g")
        #expect(!report.study.traces[0].series.contains { $0.metric == "merge_flow" })
        let html = try report.html()
        let def = try #require(html.range(of: "id=\"metric-merge_flow\""))
        let entry = html[def.upperBound...].prefix(1200)
        let upToNext = entry.components(separatedBy: "<dt").first ?? ""
        #expect(upToNext.contains("merge_flow_attention") && !upToNext.contains("not in this run"))
    }

    @Test func exploreTableReadsQuotedFieldsAndFindsTheCheapest() throws {
        let text =
            "trace,policy,hh_ratio,recent_ratio,attention_recall,kept_ratio,cheapest\n"
            + "t,\"lookm, pivotal\",0.1,0.05,0.97,0.15,true\n"
            + "t,lookm,0.2,0.05,0.99,0.25,false\n"
            + "t,h2o,0.3,0.1,0.98,0.4,\n"
        let e = try ExploreTable.parse(text, file: "safe.csv")
        #expect(e.header.count == 7 && e.rows.count == 3)
        #expect(e.rows[0][1] == "lookm, pivotal")
        #expect(e.cheapest == [e.rows[0]])
        let none = try ExploreTable.parse("a,b\n1,2\n", file: "safe.csv")
        #expect(none.cheapestColumn == nil && none.cheapest.isEmpty)
        #expect(throws: ReportError.self) { try ExploreTable.parse("", file: "safe.csv") }
        let r = rows(policies: ["h2o"], budgets: [0.2], metrics: ["attention_recall"]) { _, _, _, _ in 0.9 }
        let html = try StudyReport(
            title: "t", folder: "d", results: SweepResults(metadata: nil, rows: r),
            explore: ExploreSection(file: "safe.csv", table: e), generator: "g"
        ).html()
        #expect(html.contains("id=\"explore\"") && html.contains("lookm, pivotal") && html.contains("<tr class=\"best\">"))
    }
}

@Suite("GlyphPaths")
struct GlyphPathTests {
    /// Absolute points of relative path data with `m`, `l`, `c`, `z`.
    static func points(_ d: String) -> [(Double, Double)] {
        var tokens: [String] = []
        var cur = ""
        for ch in d {
            if ch.isLetter {
                if !cur.isEmpty { tokens.append(cur) }; tokens.append(String(ch)); cur = ""
            } else if ch == " " {
                if !cur.isEmpty { tokens.append(cur) }; cur = ""
            } else if ch == "-" {
                if !cur.isEmpty { tokens.append(cur) }; cur = "-"
            } else {
                cur.append(ch)
            }
        }
        if !cur.isEmpty { tokens.append(cur) }
        var out: [(Double, Double)] = []
        var x = 0.0, y = 0.0, sx = 0.0, sy = 0.0
        var cmd = "", nums: [Double] = []
        func run() {
            let n = cmd == "c" ? 6 : 2
            var i = 0
            while i + n <= nums.count {
                for p in stride(from: 0, to: n, by: 2) { out.append((x + nums[i + p], y + nums[i + p + 1])) }
                x += nums[i + n - 2]; y += nums[i + n - 1]
                if cmd == "m" && i == 0 { sx = x; sy = y }
                i += n
            }
        }
        for t in tokens {
            if let v = Double(t) { nums.append(v); continue }
            run(); nums = []; cmd = t
            if t == "z" { x = sx; y = sy }
        }
        run()
        return out
    }

    @Test func glyphRunsBecomeOnePathAndTheirSymbolsGo() {
        let svg = """
            <svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="40pt" height="30pt" viewBox="0 0 40 30">
            <defs>
            <g>
            <symbol overflow="visible" id="f1-glyph0-0">
            <path style="stroke:none;" d="M 0 0 L 1 0 L 1 1 Z M 0.5 0.5 C 0.6 0.5 0.7 0.6 0.7 0.7 Z "/>
            </symbol>
            <symbol overflow="visible" id="f1-glyph0-1">
            <path style="stroke:none;" d="M 0 0 Q 1 1 2 2 Z "/>
            </symbol>
            </g>
            </defs>
            <g style="fill:rgb(0%,0%,0%);fill-opacity:1;">
              <use xlink:href="#f1-glyph0-0" x="10" y="20"/>
              <use xlink:href="#f1-glyph0-0" x="12" y="20"/>
            </g>
            <g style="fill:rgb(0%,0%,0%);fill-opacity:1;">
              <use xlink:href="#f1-glyph0-1" x="3" y="4"/>
            </g>
            </svg>
            """
        let out = GlyphPaths.inline(svg)
        #expect(out.contains("  <path d=\"m10 20l1 0l0 1zm.5 .5c.1 0 .2 .1 .2 .2zm1.5-.5l1 0l0 1zm.5 .5c.1 0 .2 .1 .2 .2z\"/>"), "\(out)")
        #expect(!out.contains("f1-glyph0-0"), "the converted glyph's symbol is dropped")
        // A glyph with a command it does not know stays a <use>, and keeps its symbol.
        #expect(out.contains("<use xlink:href=\"#f1-glyph0-1\" x=\"3\" y=\"4\"/>") && out.contains("id=\"f1-glyph0-1\""))
    }

    @Test func roundingDoesNotAccumulateAlongALabel() {
        // 200 glyphs of 50 tiny steps each: every point stays within 0.005 pt of its exact place.
        var d = "M 0.0031 0.0017"
        for k in 1 ... 50 { d += " L \(0.0031 + 0.0137 * Double(k)) \(0.0017 + 0.0071 * Double(k))" }
        d += " Z"
        var pen = GlyphPaths.Pen()
        var exact: [(Double, Double)] = []
        for g in 0 ..< 200 {
            let x = 1.3333 * Double(g), y = 7.77
            let drawn = pen.draw(d, at: x, y)
            #expect(drawn)
            exact.append((0.0031 + x, 0.0017 + y))
            for k in 1 ... 50 { exact.append((0.0031 + 0.0137 * Double(k) + x, 0.0017 + 0.0071 * Double(k) + y)) }
        }
        let got = Self.points(pen.data)
        #expect(got.count == exact.count)
        let worst = zip(got, exact).map { max(abs($0.0 - $1.0), abs($0.1 - $1.1)) }.max() ?? 1
        #expect(worst <= 0.005 + 1e-9, "worst error \(worst)")
    }
}
