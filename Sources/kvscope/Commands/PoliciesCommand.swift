import ArgumentParser
import Foundation
import KVPolicies

/// `kvscope policies [ID]`: the policy catalogue, derived from each policy's declaration.
struct PoliciesCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample("policies"),
        HelpExample("policies lookm"),
        HelpExample("policies snapkv --json"),
        HelpExample(
            "policies --markdown -o Output/policy-catalogue.md", note: "the catalogue page (docs/policy-catalogue.md is written so)"),
    ]

    static let configuration = CommandConfiguration(
        commandName: "policies",
        abstract: "List the cache policies, or print one policy's rule, parameters and paper.",
        discussion: """
            Without an id: every policy with a one-line summary, what it reads from a trace, its traits and \
            parameters. With an id: its full rule (formula, ties, early exits, the official code's quirks). \
            Set a parameter with --param name=value on simulate and render, or sweep a list of values with \
            --param name=v1,v2 on sweep. Every non-merging policy also takes --merge pivotal|average|weighted.
            """ + "\n\n" + HelpExample.section(examples)
    )

    @Argument(help: ArgumentHelp("A policy id (case-insensitive).", valueName: "id"))
    var id: String?
    @Flag(name: .customLong("ids"), help: "Print the ids only, one per line.")
    var idsOnly = false
    @Flag(name: .customLong("json"), help: "Print the declarations as JSON.")
    var json = false
    @Flag(name: .customLong("markdown"), help: "Print the whole catalogue as Markdown (the policy catalogue of docs/).")
    var markdown = false
    @Option(
        name: [.customShort("o"), .customLong("output")],
        help: ArgumentHelp("Write to this file instead of standard output.", valueName: "file"))
    var output: String?

    func validate() throws {
        if [idsOnly, json, markdown].filter({ $0 }).count > 1 { throw ValidationError("use one of --ids, --json, --markdown") }
        if let id {
            do { _ = try PolicyRegistry.resolve(id) } catch let e as PolicyError { throw ValidationError("\(id): \(e.message)") }
        }
    }

    func run() throws {
        let chosen = try id.map { [try PolicyRegistry.resolve($0)] } ?? PolicyRegistry.declarations
        let text: String
        if idsOnly {
            text = chosen.map(\.id).joined(separator: "\n") + "\n"
        } else if json {
            let docs = chosen.map(DeclarationJSON.init)
            text = try (id == nil ? jsonText(docs) : jsonText(docs[0])) + "\n"
        } else if markdown {
            text = PolicyCatalogue.markdown(chosen)
        } else if id != nil {
            text = PolicyCatalogue.detail(chosen[0])
        } else {
            text = PolicyCatalogue.listing(chosen)
        }
        if let output {
            try writeOutput(Data(text.utf8), to: output, flag: "--output")
        } else {
            print(text, terminator: "")
        }
    }
}

/// A declaration as JSON (`kvscope policies --json`), encoded straight from the declaration.
struct DeclarationJSON: Encodable {
    var declaration: PolicyDeclaration

    init(_ d: PolicyDeclaration) { declaration = d }

    enum CodingKeys: String, CodingKey {
        case id, summary, paper, officialMode = "official_mode", base, merge, requirements, traits, parameters, rule
    }

    func encode(to encoder: any Encoder) throws {
        let d = declaration
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(d.id, forKey: .id)
        try c.encode(d.summary, forKey: .summary)
        try c.encode(d.paper, forKey: .paper)
        try c.encodeIfPresent(d.officialMode, forKey: .officialMode)
        try c.encode(d.baseID, forKey: .base)
        try c.encodeIfPresent(d.composition?.merge.rawValue, forKey: .merge)
        try c.encode(d.requirements.description, forKey: .requirements)
        try c.encode(PolicyCatalogue.traitNames(d.traits), forKey: .traits)
        try c.encode(d.parameters, forKey: .parameters)
        try c.encode(d.rule, forKey: .rule)
    }
}

/// The texts of `kvscope policies`, all from the declarations.
enum PolicyCatalogue {
    static func traitNames(_ t: PolicyTraits) -> [String] {
        [
            (PolicyTraits.merges, "merges"), (.usesRecent, "uses the recent window r"), (.keepsExactlyC, "keeps exactly C"),
            (.sharedByHeads, "one set for all heads"), (.reference, "reference"),
        ].filter { t.contains($0.0) }.map(\.1)
    }

    static func parameterLine(_ p: ParameterSpec) -> String {
        "--param \(p.name)=\(p.defaultValue?.description ?? "…")  \(p.help) [\(p.domain)]"
    }

    static func listing(_ ds: [PolicyDeclaration]) -> String {
        let width = ds.map(\.id.count).max() ?? 0
        let pad = String(repeating: " ", count: width + 2)
        var out = ""
        for d in ds {
            out += d.id.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + d.summary
            if let m = d.officialMode { out += " [official kv_mode \(m)]" }
            out += "\n" + pad + (["needs: \(d.requirements)"] + traitNames(d.traits)).joined(separator: "; ") + "\n"
            for p in d.parameters { out += pad + parameterLine(p) + "\n" }
        }
        out += "\nRun options (all policies): --fidelity code|intended (default code), --gqa mean|max|sum (default mean), --seed N,\n"
        out += "--merge pivotal|average|weighted, --merge-filter rank-shared|per-head and --merge-scope all|modality|image\n"
        out += "(where evicted tokens may merge; default all). Ties go to the lowest position.\n"
        out += "`kvscope policies ID` prints a policy's full rule.\n"
        return out
    }

    static func detail(_ d: PolicyDeclaration) -> String {
        var out = "\(d.id): \(d.summary)\n"
        out += "paper: \(d.paper)\n"
        if let m = d.officialMode { out += "official kv_mode: \(m)\n" }
        if let c = d.composition { out += "is: \(c.base) under the \(c.merge.rawValue) merge\n" }
        out += "needs: \(d.requirements)\n"
        if !d.traits.isEmpty { out += "traits: \(traitNames(d.traits).joined(separator: ", "))\n" }
        out += "\n" + wrap(d.rule, width: 96) + "\n"
        if !d.parameters.isEmpty {
            out += "\nparameters:\n"
            for p in d.parameters { out += "  " + parameterLine(p) + "\n" }
        }
        return out
    }

    static func markdown(_ ds: [PolicyDeclaration]) -> String {
        var out = "# Policy catalogue\n\nGenerated by `kvscope policies --markdown` from the policies' declarations; "
        out += "do not edit by hand. Budgets, fidelity, GQA and the merge wrapper are explained in [policies.md](policies.md).\n\n"
        out += "| id | summary | needs | parameters |\n|---|---|---|---|\n"
        for d in ds {
            let params = d.parameters.map { "`\($0.name)=\($0.defaultValue?.description ?? "…")`" }.joined(separator: " ")
            out += "| [`\(d.id)`](#\(d.id)) | \(d.summary) | \(d.requirements) | \(params) |\n"
        }
        for d in ds {
            out += "\n## \(d.id)\n\n\(d.summary). *\(d.paper)*"
            if let m = d.officialMode { out += "; official `kv_mode` `\(m)`" }
            out += ".\n\n"
            if let c = d.composition { out += "Exactly `\(c.base)` under the `\(c.merge.rawValue)` merge.\n\n" }
            out += d.rule + "\n\n"
            out += "Needs: \(d.requirements)."
            if !d.traits.isEmpty { out += " Traits: \(traitNames(d.traits).joined(separator: ", "))." }
            out += "\n"
            if !d.parameters.isEmpty {
                out += "\n| parameter | default | values | meaning |\n|---|---|---|---|\n"
                for p in d.parameters {
                    out += "| `\(p.name)` | \(p.defaultValue.map { "`\($0)`" } ?? "derived") | \(p.domain) | \(p.help) |\n"
                }
            }
        }
        return out
    }

    /// Wraps `text` at spaces to lines of at most `width` characters.
    static func wrap(_ text: String, width: Int) -> String {
        var lines: [String] = [], line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty && line.count + 1 + word.count > width { lines.append(line); line = "" }
            line += (line.isEmpty ? "" : " ") + word
        }
        if !line.isEmpty { lines.append(line) }
        return lines.joined(separator: "\n")
    }
}
