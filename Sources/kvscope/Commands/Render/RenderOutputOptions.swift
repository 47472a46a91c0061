import ArgumentParser
import Foundation
import KVTrace
import KVCairo
import KVPlot

/// `-o/--output` (alias `--out`), `--title`, `--scale`: shared by every `kvscope render`
/// subcommand. The file is written to a temporary name beside the target and renamed, so a
/// failure never leaves half a figure and never touches the inputs.
struct RenderOutputOptions: ParsableArguments {
    @Option(
        name: [.customShort("o"), .customLong("output"), .customLong("out")],
        help: ArgumentHelp(
            "Output file (--out is an alias); its extension picks the format: .png (default), .svg or .pdf. Default: Output/<figure>-<trace>….png.",
            valueName: "file"))
    var out: String?
    @Option(name: .customLong("title"), help: "Replace the figure's title (the subtitle still states every transform).")
    var title: String?
    @Option(name: .customLong("scale"), help: "PNG device pixels per point.")
    var scale: Double = 2
    /// For tests and figure work: audit the layout (text or shapes off the page, a blank band
    /// under the content) before writing, and fail with the problems instead of writing.
    @Flag(name: .customLong("check-layout"), help: .hidden)
    var checkLayout = false

    func validate() throws {
        guard scale.isFinite, scale > 0, scale <= 16 else { throw ValidationError("--scale must be in (0, 16], got \(scale)") }
        if let out {
            let ext = URL(fileURLWithPath: out).pathExtension
            guard OutputFormat(pathExtension: ext) != nil else {
                throw ValidationError("--output \(out): unknown format '\(ext)' (use .png, .svg or .pdf)")
            }
        }
    }

    /// The target file: `--output`, else `Output/<defaultName>.png`.
    func url(defaultName: String) -> URL {
        URL(fileURLWithPath: out ?? "Output/\(RenderSupport.fileSafe(defaultName)).png")
    }

    /// The title to draw: `--title` when given.
    func title(_ automatic: String) -> String { title ?? automatic }

    /// Renders `figure` atomically and prints where it went.
    func write(_ figure: Figure, defaultName: String) throws {
        let url = url(defaultName: defaultName)
        if checkLayout {
            let audit = LayoutAudit(figure)
            var problems = audit.problems().filter { !$0.contains(" overlaps ") }
            if let content = audit.contentBounds, figure.size.height - content.maxY > 30 {
                problems.append("\(Int(figure.size.height - content.maxY)) pt of blank page under the content")
            }
            if !problems.isEmpty {
                throw CLIError(
                    "--check-layout \(url.lastPathComponent): \(problems.count) problem(s): \(problems.prefix(3).joined(separator: "; "))")
            }
        }
        guard let format = OutputFormat(pathExtension: url.pathExtension, scale: scale) else {
            throw CLIError("--output \(url.path): unknown format '\(url.pathExtension)' (use .png, .svg or .pdf)")
        }
        let dir = url.deletingLastPathComponent()
        do { try AtomicFile.makeFolder(dir) } catch let e as TraceError { throw CLIError("--output \(url.path): \(e.description)") }
        do {
            try render(figure, to: url, format: format)
        } catch let e as TraceError {
            throw CLIError("--output \(e.description)")
        } catch {
            throw CLIError("--output \(url.path): \(String(describing: error).split(separator: "\n").first ?? "render failed")")
        }
        print("wrote \(url.path)")
    }
}
