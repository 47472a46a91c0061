import ArgumentParser
import Foundation

/// One `--help` example: a `kvscope` command line that runs from the repository root on files
/// shipped in the repository and writes only under `Output/`. A command's examples run in order,
/// so a later one may read what an earlier one wrote (`render curves` after a sweep).
///
/// Each command declares its examples once (``ExampledCommand/examples``); its `--help` text is
/// built from that list (``section(_:)``), and the hidden `kvscope help-examples` prints the same
/// list as JSON for the test that runs every example.
struct HelpExample: Encodable, Sendable {
    /// The arguments after `kvscope`, as a shell would split the line.
    var arguments: [String]
    /// What the example shows, printed as a `#` line above it (nil: none).
    var note: String?

    /// `line` is the command line after `kvscope`; words split at spaces, `'…'` quotes a word.
    init(_ line: String, note: String? = nil) {
        var words: [String] = [], word = "", quoted = false, started = false
        for ch in line {
            if ch == "'" { quoted.toggle(); started = true; continue }
            if ch == " " && !quoted {
                if started { words.append(word) }
                word = ""; started = false
                continue
            }
            word.append(ch); started = true
        }
        if started { words.append(word) }
        arguments = words
        self.note = note
    }

    /// The line as a user types it: words with shell metacharacters in single quotes.
    var commandLine: String {
        (["kvscope"] + arguments).map { w in
            w.isEmpty || w.utf8.contains(where: { Self.shellSpecial.contains($0) }) ? "'\(w)'" : w
        }.joined(separator: " ")
    }

    /// The bytes that make a word need quotes (all ASCII).
    static let shellSpecial = Set(" <>|&;*?()[]$'\"\\".utf8)

    /// The "Examples:" section of a command's discussion: each example on its own line, long ones
    /// continued with ` \` between words within 78 columns (so that the help's own wrapping at 80
    /// leaves them alone), a note as a `#` line above its example.
    ///
    /// Widths are counted in characters as each word is added (built for every command's
    /// configuration at start-up, so linear in the text, not quadratic).
    static func section(_ examples: [HelpExample]) -> String {
        guard !examples.isEmpty else { return "" }
        var lines = [examples.count == 1 ? "Example:" : "Examples:"]
        for e in examples {
            if let n = e.note {
                var line = "  #", width = 3
                for word in n.split(separator: " ") {
                    let w = word.count
                    if width + w + 1 > 78 { lines.append(line); line = "  #"; width = 3 }
                    line += " " + word
                    width += 1 + w
                }
                lines.append(line)
            }
            var line = "  ", width = 2, hasText = false
            for word in e.commandLine.split(separator: " ", omittingEmptySubsequences: false) {
                let w = word.count
                if width + w > 76, hasText {
                    lines.append(line + "\\")
                    line = "      "; width = 6; hasText = false
                }
                line += word + " "
                width += w + 1
                hasText = hasText || word.unicodeScalars.contains { !CharacterSet.whitespaces.contains($0) }
            }
            lines.append(String(line.dropLast()))
        }
        return lines.joined(separator: "\n")
    }
}

/// A command whose `--help` ends with examples that run on shipped files.
protocol ExampledCommand: ParsableCommand {
    static var examples: [HelpExample] { get }
}

/// `kvscope help-examples` (hidden): every command's examples as JSON, for the test that runs them.
struct HelpExamplesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "help-examples",
        abstract: "Print every command's --help examples as JSON (for the test that runs them).",
        shouldDisplay: false)

    struct Entry: Encodable {
        /// The subcommand path, e.g. `render curves`.
        var command: String
        /// False for a group of subcommands (it needs no examples of its own).
        var leaf: Bool
        var examples: [HelpExample]
    }

    /// Walks the command tree from `root`, depth first, in declaration order.
    static func entries(_ root: ParsableCommand.Type, path: [String] = []) -> [Entry] {
        var out: [Entry] = []
        for sub in root.configuration.subcommands where sub != HelpExamplesCommand.self {
            let name = sub.configuration.commandName ?? String(describing: sub)
            let here = path + [name]
            let examples = (sub as? any ExampledCommand.Type)?.examples ?? []
            out.append(Entry(command: here.joined(separator: " "), leaf: sub.configuration.subcommands.isEmpty, examples: examples))
            out += entries(sub, path: here)
        }
        return out
    }

    func run() throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try e.encode(Self.entries(KVScope.self)), as: UTF8.self))
    }
}
