import Foundation
import KVCairo
import KVPolicies
import Testing

/// `kvscope report` end to end: a small sweep of the small trace, its page checked as text and,
/// in a real headless Chromium, as a rendered page.
@Suite("kvscope report")
struct ReportCLITests {
    static let policies = ["full", "oracle", "h2o", "lookm", "streaming"]
    static let budgets = ["0.25", "0.5", "0.75"]

    /// A sweep of the small trace: (sweep folder, trace folder).
    static func smallSweep() throws -> (dir: URL, trace: URL) {
        let trace = try TestTrace.small().writeTemporaryFolder(roles: ["attn", "k"])
        let out = trace.deletingLastPathComponent().appendingPathComponent("sweep")
        let r = try CLI.run([
            "sweep", trace.path, "--policies", policies.joined(separator: ","), "--budgets", budgets.joined(separator: ","),
            "--out", out.path,
        ])
        guard r.status == 0 else { throw CLIError(message: "sweep failed: \(r.stderr)") }
        return (out, trace)
    }

    struct CLIError: Error { var message: String }

    /// The `<table class="summary" …>` … `</table>` of `html`.
    static func summaryTable(_ html: String) -> String? {
        guard let start = html.range(of: "<table class=\"summary\""), let end = html[start.upperBound...].range(of: "</table>") else {
            return nil
        }
        return String(html[start.lowerBound ..< end.upperBound])
    }

    static func count(_ needle: String, in s: String) -> Int { s.components(separatedBy: needle).count - 1 }

    /// Figures drawn as an inline `<svg>`.
    static func inlineFigures(_ html: String) -> Int {
        (try? Regex(#"<figure[^>]*><svg "#)).map { html.matches(of: $0).count } ?? -1
    }

    @Test func reportOfASmallSweepIsOneSelfContainedPage() throws {
        let (dir, _) = try Self.smallSweep()
        let r = try CLI.run(["report", dir.path])
        #expect(r.status == 0, "\(r.stderr)")
        let url = dir.appendingPathComponent("report.html")
        let html = try String(contentsOf: url, encoding: .utf8)
        #expect(r.stdout.contains(url.path))
        // No external reference, no script, every figure inline.
        #expect(html.range(of: #"(src|href)\s*=\s*["']?\s*(https?:|//)"#, options: [.regularExpression, .caseInsensitive]) == nil)
        #expect(!html.contains("<script") && !html.contains("<link") && !html.contains("<iframe"))
        #expect(!html.contains("<img"), "figures are inline SVG")
        let figures = Self.count("<figure", in: html)
        #expect(figures >= 4 && Self.inlineFigures(html) == figures, "every figure is an inline <svg>")
        #expect(Self.count("<svg ", in: html) == figures && !html.contains("<symbol"), "text is drawn as paths")
        #expect(
            html.contains("Retention map at budget 0.5") && html.contains("Per-image patch grids at budget 0.5"),
            "default: the median budget")
        // The summary table: the full cache once, then every policy at every budget.
        let table = try #require(Self.summaryTable(html))
        #expect(Self.count("<tr", in: table) == 1 + 1 + (Self.policies.count - 1) * Self.budgets.count)
        for p in Self.policies { #expect(table.contains("<code>\(p)</code>"), "\(p)") }
        for b in Self.budgets { #expect(table.contains(">\(b)</th>"), "\(b)") }
        #expect(table.contains("★"))
        // Each policy's swatch is its declaration's colour (the figures' colour), not a hash of its name.
        for p in Self.policies where p != "lookm" {
            let hex = try #require(PolicyRegistry.declaration(p)).color
            let css = "background:#" + String(format: "%06x", hex)
            #expect(table.contains("\(css)\"></span><code>\(p)</code>"), "\(p): \(css)")
        }
        // Provenance and definitions.
        #expect(html.contains("content hash") && html.contains("command line") && html.contains("kvscope 0.1.0"))
        #expect(html.contains("id=\"metrics\"") && html.contains("attention_recall"))
        // The small trace has no q/v: output_error is listed as missing with its reason.
        #expect(html.contains("id=\"problems\"") && html.contains("output_error"))
        // Same folder, same bytes.
        let again = dir.appendingPathComponent("again.html")
        #expect(try CLI.run(["report", dir.path, "-o", again.path]).status == 0)
        #expect(try Data(contentsOf: again) == Data(contentsOf: url))
    }

    @Test func aMovedTraceIsReportedAndFoundAgainWithTrace() throws {
        let (dir, trace) = try Self.smallSweep()
        let moved = trace.deletingLastPathComponent().appendingPathComponent("moved")
        try FileManager.default.moveItem(at: trace, to: moved)
        let r = try CLI.run(["report", dir.path])
        #expect(r.status == 0, "\(r.stderr)")
        let html = try String(contentsOf: dir.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.contains("trace not found at \(trace.path)"))
        #expect(!html.contains("Retention map at budget"))
        let r2 = try CLI.run(["report", dir.path, "--trace", moved.path, "--budget", "0.25"])
        #expect(r2.status == 0, "\(r2.stderr)")
        let html2 = try String(contentsOf: dir.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html2.contains("Retention map at budget 0.25") && !html2.contains("trace not found"))
    }

    @Test func anExploreFolderShowsTheCheapestSafeSettingsAndItsRatioMaps() throws {
        let (dir, _) = try Self.smallSweep()
        try Data(
            """
            trace,policy,hh_ratio,recent_ratio,attention_recall,kept_ratio,cheapest
            small,lookm,0.1,0.05,0.97,0.15,true
            small,"h2o, sinks",0.2,0.1,0.99,0.3,false

            """.utf8
        ).write(to: dir.appendingPathComponent("safe.csv"))
        let map = dir.appendingPathComponent("ratio-map-attention_recall.svg")
        let r0 = try CLI.run(["render", "curves", dir.appendingPathComponent("results.csv").path, "--out", map.path])
        #expect(r0.status == 0, "\(r0.stderr)")
        try Data("<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".utf8)
            .write(to: dir.appendingPathComponent("ratio-map-evil.svg"))
        let r = try CLI.run(["report", dir.path, "--no-maps"])
        #expect(r.status == 0, "\(r.stderr)")
        let html = try String(contentsOf: dir.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.contains("id=\"explore\"") && html.contains("Cheapest safe settings"))
        #expect(html.contains("h2o, sinks") && html.contains("<tr class=\"best\">"))
        #expect(html.contains("<figcaption>ratio-map-attention_recall.svg</figcaption>"))
        #expect(html.contains("ratio-map-evil.svg left out") && !html.contains("<script"))
        #expect(!html.contains("Retention map"), "--no-maps")
        #expect(Self.inlineFigures(html) == Self.count("<figure", in: html))
    }

    func badInput(_ args: (URL) -> [String], prepare: (URL) throws -> Void, expected: String) throws {
        let dir = CLI.tempDir()
        try prepare(dir)
        let before = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        let r = try CLI.run(["report"] + args(dir))
        #expect(r.status == 2, "\(r.stdout) \(r.stderr)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("kvscope: error:"), "\(r.stderr)")
        #expect(r.stderr.contains(expected), "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == before, "nothing written")
    }

    @Test func badInputGetsOneLineAndWritesNothing() throws {
        // A folder that is not a sweep.
        try badInput(
            { [$0.path] }, prepare: { try Data("x".utf8).write(to: $0.appendingPathComponent("notes.txt")) },
            expected: "not a sweep or explore folder")
        try badInput({ [$0.appendingPathComponent("nowhere").path] }, prepare: { _ in }, expected: "no such folder")
        try badInput(
            { [$0.appendingPathComponent("notes.txt").path] },
            prepare: { try Data("x".utf8).write(to: $0.appendingPathComponent("notes.txt")) },
            expected: "not a folder")
        // A sweep with no rows, and a results.json that is not one.
        try badInput(
            { [$0.path] },
            prepare: {
                try Data(#"{"metadata": {}, "rows": []}"#.utf8).write(to: $0.appendingPathComponent("results.json"))
            }, expected: "no result rows")
        try badInput(
            { [$0.path] }, prepare: { try Data("{\"rows\": [{\"trace\": 1}]}".utf8).write(to: $0.appendingPathComponent("results.json")) },
            expected: "not a KVScope results.json")
        try badInput(
            { [$0.path] }, prepare: { try Data("garbage".utf8).write(to: $0.appendingPathComponent("results.json")) },
            expected: "results.json")
        // Flags.
        try badInput({ [$0.path, "--budget", "1.5"] }, prepare: { _ in }, expected: "--budget")
    }

    // MARK: - Chromium

    /// Debian's `chromium`, installed with apt-get when absent.
    static func chromium() throws -> URL {
        let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].map(URL.init(fileURLWithPath:))
        if let c = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) { return c }
        func apt(_ args: [String]) throws -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = (getuid() == 0 ? [] : ["sudo"]) + ["apt-get"] + args
            var env = ProcessInfo.processInfo.environment
            env["DEBIAN_FRONTEND"] = "noninteractive"
            p.environment = env
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            return p.terminationStatus
        }
        if try apt(["install", "-y", "-qq", "chromium"]) != 0 {
            _ = try apt(["update", "-qq"])
            _ = try apt(["install", "-y", "-qq", "chromium"])
        }
        guard let c = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw CLIError(message: "chromium is not installed and `apt-get install chromium` did not install it")
        }
        return c
    }

    /// Runs headless Chromium with `args` on `page`; returns stdout.
    static func headless(_ chromium: URL, _ args: [String], page: URL, in dir: URL) throws -> String {
        let profile = dir.appendingPathComponent("profile-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        let p = Process()
        p.executableURL = chromium
        p.arguments =
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                "--user-data-dir=\(profile.path)",
            ] + args + [page.absoluteString]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    @Test(.timeLimit(.minutes(10)))
    func theReportRendersInHeadlessChromium() throws {
        let chromium = try Self.chromium()
        let (dir, _) = try Self.smallSweep()
        #expect(try CLI.run(["report", dir.path]).status == 0)
        let report = dir.appendingPathComponent("report.html")
        let html = try String(contentsOf: report, encoding: .utf8)
        let expectedRows = Self.count("<tr", in: try #require(Self.summaryTable(html))) - 1  // less the header row
        let expectedFigures = Self.inlineFigures(html)

        // A screenshot: not blank, and the summary table's colours are on it.
        let shot = dir.appendingPathComponent("shot.png")
        _ = try Self.headless(chromium, ["--window-size=1280,2200", "--screenshot=\(shot.path)"], page: report, in: dir)
        let img = try readPNG(shot)
        #expect(img.width == 1280 && img.height == 2200)
        var sum = 0.0, sq = 0.0, header = 0, best = 0
        for p in img.pixels {
            let l = Double((p >> 16) & 0xFF) * 0.299 + Double((p >> 8) & 0xFF) * 0.587 + Double(p & 0xFF) * 0.114
            sum += l; sq += l * l
            if p == 0xEEF1F5 { header += 1 }
            if p == 0xDCF1E2 { best += 1 }
        }
        let n = Double(img.pixels.count)
        let sd = (sq / n - (sum / n) * (sum / n)).squareRoot()
        #expect(sd > 20, "the screenshot looks blank (luminance sd \(sd))")
        #expect(header > 5_000, "no table header or setting cells on the screenshot (\(header) px)")
        #expect(best > 500, "no best-value cells on the screenshot (\(best) px)")

        // After layout, in the same Chromium: the summary rows are laid out, every figure is there,
        // and the page opened in under a second. A harness page (not part of the report) loads the report
        // in a frame and writes what it measured into its own DOM, which --dump-dom prints.
        let harness = dir.appendingPathComponent("harness.html")
        try Data(
            """
            <!DOCTYPE html><html><body><pre id="result">pending</pre><script>
            const t0 = performance.now();
            const f = document.createElement('iframe');
            f.style.width = '1280px'; f.style.height = '2000px';
            f.onload = () => {
              const d = f.contentDocument;
              const rows = [...d.querySelectorAll('table.summary tbody tr')].filter(r => r.getBoundingClientRect().height > 0);
              const ms = performance.now() - t0;
              document.getElementById('result').textContent =
                'rows=' + rows.length + ';svg=' + d.querySelectorAll('figure svg').length + ';ms=' + Math.round(ms);
            };
            f.src = 'report.html';
            document.body.appendChild(f);
            </script></body></html>
            """.utf8
        ).write(to: harness)
        let dom = try Self.headless(chromium, ["--allow-file-access-from-files", "--dump-dom"], page: harness, in: dir)
        let result = try #require(
            dom.range(of: "rows=").map { String(dom[$0.lowerBound...].prefix { $0 != "<" }) }, "harness printed nothing: \(dom.prefix(300))"
        )
        let fields = Dictionary(
            uniqueKeysWithValues: result.split(separator: ";").compactMap { kv -> (String, Int)? in
                let p = kv.split(separator: "=")
                return p.count == 2 ? (String(p[0]), Int(p[1]) ?? -1) : nil
            })
        #expect(fields["rows"] == expectedRows, "\(result)")
        #expect(fields["svg"] == expectedFigures, "\(result)")
        let ms = try #require(fields["ms"])
        #expect(ms >= 0 && ms < 1000, "the report took \(ms) ms to open")
    }
}
