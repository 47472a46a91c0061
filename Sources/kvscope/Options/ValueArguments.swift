import ArgumentParser
import KVPolicies
import KVTrace

// The typed flag values that are not enums or plain numbers. Each parses one whole flag value (or,
// inside `ListArgument`, one comma-separated element); a value that does not parse is reported by
// ArgumentParser in one line naming the flag and its value name (`The value 'axb' is invalid for
// '--grid <RxC>'`), exit status 2.

/// `RxC` (`24x24`, case-insensitive `x`): a patch grid of positive integers whose product fits in `Int`.
extension GridSize: ExpressibleByArgument {
    public init?(argument: String) {
        let rc = argument.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard rc.count == 2, let r = Int(rc[0]), let c = Int(rc[1]), r > 0, c > 0 else { return nil }
        self.init(rows: r, cols: c)
        guard checkedCount != nil else { return nil }
    }
}

/// `a:b`: the half-open span `a ..< b` with `0 ≤ a < b` (one element of `--image-spans`).
struct SpanArgument: ExpressibleByArgument, CustomStringConvertible {
    var range: Range<Int>
    init?(argument: String) {
        let ab = argument.split(separator: ":", omittingEmptySubsequences: false)
        guard ab.count == 2, let a = Int(ab[0]), let b = Int(ab[1]), a >= 0, a < b else { return nil }
        range = a ..< b
    }
    var description: String { "\(range.lowerBound):\(range.upperBound)" }
}

/// An integer ≥ 0 (one element of `--placeholders`, `--kv-map`).
struct IndexArgument: ExpressibleByArgument, CustomStringConvertible {
    var value: Int
    init?(argument: String) {
        guard let v = Int(argument), v >= 0 else { return nil }
        value = v
    }
    var description: String { String(value) }
}

/// The one dtype override of `--dtype` (case-insensitive): 2-byte void / `<i2` arrays read as bfloat16.
enum DTypeOverride: String, ExpressibleByArgument, CaseIterable {
    case bf16
    init?(argument: String) { self.init(rawValue: argument.lowercased()) }
}

/// `0,5-9`: layers and closed layer ranges, never expanded here (so `0-9223372036854775807` is
/// cheap); `LayerOptions.chosen(_:)` checks them against a trace.
struct LayerSelection: ExpressibleByArgument, CustomStringConvertible {
    var ranges: [ClosedRange<Int>]
    init?(argument: String) {
        var out: [ClosedRange<Int>] = []
        for part in argument.split(separator: ",", omittingEmptySubsequences: false) {
            let ab = part.split(separator: "-", omittingEmptySubsequences: false)
            if ab.count == 1, let v = Int(ab[0]), v >= 0 { out.append(v ... v); continue }
            guard ab.count == 2, let a = Int(ab[0]), let b = Int(ab[1]), a >= 0, a <= b else { return nil }
            out.append(a ... b)
        }
        guard !out.isEmpty else { return nil }
        ranges = out
    }
    var description: String {
        ranges.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",")
    }
}

/// `a:b`, `a:` or `:b`: a half-open position range whose open ends are filled in by
/// `resolve(flag:limit:)` (`0` and the limit).
struct RangeArgument: ExpressibleByArgument, CustomStringConvertible {
    var lower: Int?
    var upper: Int?
    init?(argument: String) {
        let ab = argument.split(separator: ":", omittingEmptySubsequences: false)
        guard ab.count == 2 else { return nil }
        lower = ab[0].isEmpty ? nil : Int(ab[0])
        upper = ab[1].isEmpty ? nil : Int(ab[1])
        guard ab[0].isEmpty || lower.map({ $0 >= 0 }) == true, ab[1].isEmpty || upper != nil else { return nil }
        if let a = lower, let b = upper, a >= b { return nil }
    }
    var description: String { "\(lower.map(String.init) ?? ""):\(upper.map(String.init) ?? "")" }

    /// The range within `0 ... limit`; one that is empty or goes past `limit` is an error naming `flag`.
    func resolve(flag: String, limit: Int) throws -> Range<Int> {
        let a = lower ?? 0, b = upper ?? limit
        guard a < b else { throw ValidationError("\(flag): '\(self)' is not a range a:b with 0 ≤ a < b") }
        guard b <= limit else { throw ValidationError("\(flag): \(self) goes past \(limit)") }
        return a ..< b
    }
}

/// `--layers`, for the commands that walk several layers of a trace.
struct LayerOptions: ParsableArguments {
    @Option(name: .customLong("layers"), help: ArgumentHelp("Layers, e.g. 0,5-9 (default: every recorded layer).", valueName: "list"))
    var layers: LayerSelection?

    /// The chosen layers, checked against the trace: every listed layer must be recorded, so the
    /// result has at most as many entries as the trace records (a range is walked only until its
    /// first unrecorded layer).
    func chosen(_ info: TraceInfo) throws -> [Int] {
        guard let layers else { return info.recordedLayers }
        let recorded = Set(info.recordedLayers)
        var chosen = Set<Int>()
        for r in layers.ranges {
            var l = r.lowerBound
            while true {
                guard recorded.contains(l) else {
                    throw CLIError("--layers: layer \(l) is not in the trace (recorded: \(RenderSupport.compactList(info.recordedLayers)))")
                }
                chosen.insert(l)
                if l == r.upperBound { break }
                l += 1
            }
        }
        return chosen.sorted()
    }
}

/// A `--param` value, `[id.]name=value`: `scope` is the policy id before the first dot when that
/// is a registered id (any case), else nil and the dot belongs to the name. The sweep's axes
/// split `value` on commas (`window=16,32`, see `values(flag:)`).
struct ParamArgument: ExpressibleByArgument, CustomStringConvertible {
    var scope: String?
    var name: String
    var value: String
    init?(argument: String) {
        let kv = argument.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard kv.count == 2, !kv[0].isEmpty else { return nil }
        let dotted = kv[0].split(separator: ".", maxSplits: 1).map(String.init)
        if dotted.count == 2, let d = PolicyRegistry.declaration(dotted[0].lowercased()) {
            (scope, name) = (d.id, dotted[1])
        } else {
            (scope, name) = (nil, kv[0])
        }
        value = kv[1]
    }
    var description: String { "\(scope.map { $0 + "." } ?? "")\(name)=\(value)" }

    /// Whether the pair applies to policy `id` (no scope, or that id).
    func applies(to id: String) -> Bool { scope == nil || scope == id }

    /// The comma-separated values of a sweep axis; an empty one is an error naming `flag`.
    func values(flag: String) throws -> [String] {
        let vs = value.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !vs.contains(where: \.isEmpty) else { throw ValidationError("\(flag) \(name): empty value in '\(value)'") }
        return vs
    }
}
