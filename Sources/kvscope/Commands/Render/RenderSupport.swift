import ArgumentParser
import Foundation
import KVCairo
import KVPlot
import KVPolicies
import KVTrace

/// `--out`, `--title`, `--scale`: shared by every `kvscope render` subcommand.
struct RenderOutputOptions: ParsableArguments {
    @Option(name: .customLong("out"), help: ArgumentHelp(
        "Output file; its extension picks the format: .png (default), .svg or .pdf. Default: Output/<figure>-<trace>….png.",
        valueName: "file"))
    var out: String?
    @Option(name: .customLong("title"), help: "Replace the figure's title (the subtitle still states every transform).")
    var title: String?
    @Option(name: .customLong("scale"), help: "PNG device pixels per point.")
    var scale: Double = 2

    func validate() throws {
        guard scale.isFinite, scale > 0, scale <= 16 else { throw ValidationError("--scale must be in (0, 16], got \(scale)") }
        if let out {
            let ext = URL(fileURLWithPath: out).pathExtension
            guard OutputFormat(pathExtension: ext) != nil else {
                throw ValidationError("--out \(out): unknown format '\(ext)' (use .png, .svg or .pdf)")
            }
        }
    }

    /// The target file: `--out`, else `Output/<defaultName>.png`.
    func url(defaultName: String) -> URL {
        URL(fileURLWithPath: out ?? "Output/\(RenderSupport.fileSafe(defaultName)).png")
    }

    /// The title to draw: `--title` when given.
    func title(_ automatic: String) -> String { title ?? automatic }

    /// Renders `figure` atomically and prints where it went.
    func write(_ figure: Figure, defaultName: String) throws {
        let url = url(defaultName: defaultName)
        guard let format = OutputFormat(pathExtension: url.pathExtension, scale: scale) else {
            throw CLIError("--out \(url.path): unknown format '\(url.pathExtension)' (use .png, .svg or .pdf)")
        }
        let dir = url.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        } catch {
            throw CLIError("--out \(url.path): cannot create folder \(dir.path)")
        }
        do {
            try render(figure, to: url, format: format)
        } catch {
            throw CLIError("--out \(url.path): \(String(describing: error).split(separator: "\n").first ?? "render failed")")
        }
        print("wrote \(url.path)")
    }
}

/// `--policies`, `--budget`, `--fidelity`: the policies a retention-type figure replays.
struct RenderPolicyOptions: ParsableArguments {
    @Option(name: .customLong("policies"), help: ArgumentHelp("Comma-separated policy ids (see `kvscope policies`).", valueName: "a,b,…"))
    var policies: String?
    @Option(name: .customLong("budget"), help: "Fraction of the prefill kept, 0 < b ≤ 1 (C = int(P·b), half of it the recent window).")
    var budget: Double = 0.2
    @Option(name: .customLong("fidelity"), help: "code: the official LOOK-M classes bit for bit; intended: nominal budget.")
    var fidelity: Fidelity = .code
    @Option(name: .customLong("param"), parsing: .singleValue, help: ArgumentHelp(
        "A policy hyper-parameter, [id.]key=value (repeatable); without id it applies to every listed policy that has the parameter, e.g. --param window=8.",
        valueName: "[id.]key=value"))
    var params: [String] = []

    /// The `--param` overrides for policy `id`.
    func parameters(for id: String) throws -> [String: String] {
        let known = Set(PolicyRegistry.declaration(id)?.parameters.map(\.name) ?? [])
        var out: [String: String] = [:]
        for p in params {
            let kv = p.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, !kv[0].isEmpty else { throw ValidationError("--param: '\(p)' is not [id.]key=value") }
            let dotted = kv[0].split(separator: ".", maxSplits: 1).map(String.init)
            if dotted.count == 2, PolicyRegistry.declaration(dotted[0]) != nil {
                if dotted[0] == id { out[dotted[1]] = kv[1] }
            } else if known.contains(kv[0]) {
                out[kv[0]] = kv[1]
            }
        }
        return out
    }

    /// "window=8" lines for the subtitle, or nil.
    var paramNote: String? { params.isEmpty ? nil : "parameters: " + params.joined(separator: ", ") }

    /// The policy ids, checked against the registry.
    func ids(required: Bool) throws -> [String] {
        guard let policies else {
            if required { throw ValidationError("give --policies a,b,… (see `kvscope policies`)") }
            return []
        }
        let ids = policies.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !ids.isEmpty else { throw ValidationError("--policies: empty list") }
        return try ids.map { id in
            do { return try PolicyRegistry.resolve(id).id } catch let e as PolicyError { throw ValidationError("--policies: '\(id)': \(e.message)") }
        }
    }

    func validateBudget() throws {
        guard budget.isFinite, budget > 0, budget <= 1 else { throw ValidationError("--budget must be in (0, 1], got \(budget)") }
    }

    var spec: BudgetSpec { .fraction(budget, recentShare: 0.5) }
    var options: KVPolicies.PolicyOptions { KVPolicies.PolicyOptions(fidelity: fidelity) }
}

/// One policy's decisions over the chosen layers.
struct PolicyRun {
    var id: String
    var decisions: [LayerDecision]

    /// Mean `C_act` over layers and KV heads.
    var meanActual: Double {
        let all = decisions.flatMap(\.actual)
        return all.isEmpty ? 0 : Double(all.reduce(0, +)) / Double(all.count)
    }
    /// The nominal `C` (the first layer's; the same in every layer for uniform budgets).
    var nominal: Int { decisions.first?.nominal ?? 0 }

    /// "lookm  C = 32  C_act = 45.0  code".
    func label(fidelity: Fidelity) -> String {
        "\(id)   C = \(nominal)   C_act = \(RenderSupport.fmt(meanActual))   fidelity \(fidelity.rawValue)"
    }
}

enum RenderSupport {
    /// A file-name-safe version of `s`.
    static func fileSafe(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" })
    }

    /// `12`, `12.5`.
    static func fmt(_ x: Double) -> String { x == x.rounded() ? String(Int(x)) : String(format: "%.1f", x) }

    /// The trace name for a title, flagged when its image tokens are pseudo-images.
    static func traceTitle(_ info: TraceInfo) -> String {
        info.name + (info.syntheticImageTokens ? " (pseudo-images)" : "")
    }

    /// True when some span is image-like and the trace flags it synthetic (or the span says pseudo).
    static func hasPseudoImages(_ info: TraceInfo) -> Bool {
        info.syntheticImageTokens || info.images.contains { $0.isPseudo }
    }

    /// A subtitle line that states the pseudo-image flag, or nil.
    static func pseudoNote(_ info: TraceInfo) -> String? {
        hasPseudoImages(info) ? "pseudo-image tokens: image spans are text tokens standing in for images (synthetic_image_tokens)" : nil
    }

    /// Modality bands of positions `0 ..< T`: text runs, one band per image (labelled "image k"),
    /// other modalities, and the generated positions `≥ P`.
    static func bands(_ info: TraceInfo, upTo T: Int? = nil) -> [ModalityBand] {
        let T = T ?? info.shape.seqLen
        let P = info.shape.prefillLen
        let imageOf = info.imageIdOfPosition
        let pseudoIDs = Set(info.images.filter { $0.isPseudo || info.syntheticImageTokens }.map(\.id))
        // Key of a position: (kind, image id).
        func key(_ j: Int) -> (BandKind, Int?) {
            if j >= P { return (.generated, nil) }
            let m = j < info.modality.count ? info.modality[j] : .text
            let img = j < imageOf.count ? imageOf[j] : nil
            switch m {
            case .text: return img != nil ? (.image, img) : (.text, nil)
            case .image: return (.image, img)
            case .video: return (.video, img)
            case .audio: return (.audio, nil)
            }
        }
        var out: [ModalityBand] = []
        var start = 0
        while start < T {
            let k = key(start)
            var end = start + 1
            while end < T, key(end) == k { end += 1 }
            let label: String?
            switch k.0 {
            case .image, .video: label = k.1.map { "image \($0)" } ?? k.0.rawValue
            case .generated: label = "gen"
            default: label = k.0.rawValue
            }
            out.append(ModalityBand(start ..< end, kind: k.0, label: label, isPseudo: k.1.map { pseudoIDs.contains($0) } ?? false))
            start = end
        }
        return out
    }

    /// Parses `a:b` (half-open) within `0 ... limit`.
    static func range(_ s: String, flag: String, limit: Int) throws -> Range<Int> {
        let ab = s.split(separator: ":", omittingEmptySubsequences: false)
        guard ab.count == 2 else { throw ValidationError("\(flag): '\(s)' is not a range a:b") }
        let a = ab[0].isEmpty ? 0 : Int(ab[0]), b = ab[1].isEmpty ? limit : Int(ab[1])
        guard let a, let b, a >= 0, a < b else { throw ValidationError("\(flag): '\(s)' is not a range a:b with 0 ≤ a < b") }
        guard b <= limit else { throw ValidationError("\(flag): \(s) goes past \(limit)") }
        return a ..< b
    }

    /// Parses `0,5-9`.
    static func layerList(_ s: String, flag: String = "--layers") throws -> [Int] {
        var out: [Int] = []
        for part in s.split(separator: ",") {
            let ab = part.split(separator: "-", omittingEmptySubsequences: false)
            if ab.count == 1, let v = Int(ab[0]), v >= 0 { out.append(v); continue }
            guard ab.count == 2, let a = Int(ab[0]), let b = Int(ab[1]), a >= 0, a <= b else {
                throw ValidationError("\(flag): '\(part)' is not a layer or a range a-b")
            }
            out += Array(a ... b)
        }
        guard !out.isEmpty else { throw ValidationError("\(flag): empty list") }
        return Array(Set(out)).sorted()
    }

    /// The chosen layers, checked against the trace.
    static func layers(_ s: String?, info: TraceInfo) throws -> [Int] {
        let chosen = try s.map { try layerList($0) } ?? info.recordedLayers
        if let missing = chosen.first(where: { !info.recordedLayers.contains($0) }) {
            throw CLIError("--layers: layer \(missing) is not in the trace (recorded: \(compactList(info.recordedLayers)))")
        }
        return chosen
    }

    /// "0-29" or "0,2,5".
    static func compactList(_ xs: [Int]) -> String {
        if let f = xs.first, let l = xs.last, xs == Array(f ... l), xs.count > 2 { return "\(f)-\(l)" }
        return xs.map(String.init).joined(separator: ",")
    }

    /// Checks that `layer` is recorded.
    static func checkLayer(_ layer: Int, info: TraceInfo) throws {
        guard info.recordedLayers.contains(layer) else {
            throw CLIError("--layer \(layer): not in the trace (recorded: \(compactList(info.recordedLayers)))")
        }
    }

    /// Runs each policy on each layer at the end of prefill. Each layer is read once.
    static func decide(_ ids: [String], source: any TraceSource, layers: [Int], policy: RenderPolicyOptions,
                       progress label: String = "deciding") throws -> [PolicyRun] {
        let configurations = try ids.map { try PolicyConfiguration.parse($0, parameters: policy.parameters(for: $0)) }
        return try decide(configurations, source: source, layers: layers, budget: policy.spec, options: policy.options, progress: label)
    }

    /// Runs each configured policy on each layer at `budget`; runs are named by the configuration's label.
    static func decide(_ configurations: [PolicyConfiguration], source: any TraceSource, layers: [Int], budget: BudgetSpec,
                       options: KVPolicies.PolicyOptions, progress label: String = "deciding") throws -> [PolicyRun] {
        let policies = try configurations.map { try $0.make() }
        var runs = configurations.map { PolicyRun(id: $0.label, decisions: []) }
        let bar = Progress(total: layers.count * max(1, configurations.count), label: label)
        defer { bar.finish() }
        for l in layers {
            let ctx = try LayerContext(trace: source, layer: l, budget: budget, options: options)
            for (i, p) in policies.enumerated() {
                runs[i].decisions.append(try p.decide(ctx.named(p.id)))
                bar.step()
            }
        }
        return runs
    }
}
