import Foundation
import KVTrace

/// The value of one policy parameter, typed.
public enum ParameterValue: Sendable, Hashable, Codable, CustomStringConvertible {
    case integer(Int)
    case real(Double)
    case choice(String)
    case integers([Int])

    /// The text a user writes (`32`, `0.2`, `max`, `0,1`); also the `params` column.
    public var description: String {
        switch self {
        case let .integer(i): String(i)
        case let .real(x): "\(x)"
        case let .choice(s): s
        case let .integers(v): v.map(String.init).joined(separator: ",")
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int.self) {
            self = .integer(i)
        } else if let x = try? c.decode(Double.self) {
            self = .real(x)
        } else if let v = try? c.decode([Int].self) {
            self = .integers(v)
        } else {
            self = .choice(try c.decode(String.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case let .integer(i): try c.encode(i)
        case let .real(x): try c.encode(x)
        case let .choice(s): try c.encode(s)
        case let .integers(v): try c.encode(v)
        }
    }
}

/// One hyper-parameter a policy declares: its name, type and range, default and help.
///
/// The CLI's `--param NAME=VALUE` (and a sweep's `--param NAME=v1,v2`), their validation,
/// `kvscope policies` and the per-parameter result columns are all derived from these.
public struct ParameterSpec: Sendable, Hashable {
    /// The type and the accepted values.
    public enum Kind: Sendable, Hashable {
        /// An integer in the range; `oddOnly` also requires an odd value (pooling kernels).
        case integer(ClosedRange<Int>, oddOnly: Bool = false)
        /// A real number in the range.
        case real(ClosedRange<Double>)
        /// One of the names.
        case choice([String])
        /// A comma-separated list of integers, each in the range (may be empty).
        case integers(ClosedRange<Int>)
    }

    /// The kebab-case name (`window`, `skip-layers`).
    public var name: String
    public var kind: Kind
    /// The default; nil when the default is derived from the run (stated in `help`).
    public var defaultValue: ParameterValue?
    public var help: String

    public init(_ name: String, _ kind: Kind, default value: ParameterValue?, _ help: String) {
        self.name = name
        self.kind = kind
        self.defaultValue = value
        self.help = help
    }

    public static func integer(_ name: String, _ d: Int, in range: ClosedRange<Int>, odd: Bool = false, _ help: String) -> ParameterSpec {
        ParameterSpec(name, .integer(range, oddOnly: odd), default: .integer(d), help)
    }
    public static func real(_ name: String, _ d: Double?, in range: ClosedRange<Double>, _ help: String) -> ParameterSpec {
        ParameterSpec(name, .real(range), default: d.map { .real($0) }, help)
    }
    public static func choice<E: RawRepresentable & CaseIterable>(_ name: String, _ d: E, _ help: String) -> ParameterSpec
    where E.RawValue == String {
        ParameterSpec(name, .choice(E.allCases.map(\.rawValue)), default: .choice(d.rawValue), help)
    }

    /// The result column of this parameter (snake case).
    public var column: String { name.replacingOccurrences(of: "-", with: "_") }

    /// A short description of the accepted values: `integer 1…4096`, `max | avg`.
    public var domain: String {
        switch kind {
        case let .integer(r, odd): "\(odd ? "odd " : "")integer \(r.lowerBound)…\(r.upperBound)"
        case let .real(r): "number \(r.lowerBound)…\(r.upperBound)"
        case let .choice(names): names.joined(separator: " | ")
        case let .integers(r): "comma-separated integers \(r.lowerBound)…\(r.upperBound)"
        }
    }

    /// Parses and range-checks the text of one value; the error names the parameter.
    public func parse(_ text: String, policy: String) throws -> ParameterValue {
        let s = text.trimmingCharacters(in: .whitespaces)
        func bad(_ why: String) -> PolicyError { PolicyError(.parameter, policy: policy, "parameter \(name): '\(s)' \(why)") }
        switch kind {
        case let .integer(r, odd):
            guard let v = Int(s) else { throw bad("is not an integer") }
            guard r.contains(v) else { throw bad("is outside \(r.lowerBound)…\(r.upperBound)") }
            if odd && v % 2 == 0 { throw bad("must be odd") }
            return .integer(v)
        case let .real(r):
            guard let v = Double(s), v.isFinite else { throw bad("is not a number") }
            guard r.contains(v) else { throw bad("is outside \(r.lowerBound)…\(r.upperBound)") }
            return .real(v)
        case let .choice(names):
            guard let v = names.first(where: { $0.lowercased() == s.lowercased() }) else {
                throw bad("is not one of \(names.joined(separator: ", "))")
            }
            return .choice(v)
        case let .integers(r):
            if s.isEmpty { return .integers([]) }
            return .integers(
                try s.split(separator: ",").map { part in
                    guard let v = Int(part.trimmingCharacters(in: .whitespaces)) else { throw bad("is not a list of integers") }
                    guard r.contains(v) else { throw bad("holds \(v), outside \(r.lowerBound)…\(r.upperBound)") }
                    return v
                })
        }
    }

    /// Checks a typed value against the declaration (type and range).
    public func check(_ value: ParameterValue, policy: String) throws {
        _ = try parse(value.description, policy: policy)
        switch (kind, value) {
        case (.integer, .integer), (.real, .real), (.choice, .choice), (.integers, .integers): return
        case (.real, .integer): return
        default: throw PolicyError(.parameter, policy: policy, "parameter \(name): \(value) is not a \(domain)")
        }
    }
}

/// A parameter as `kvscope policies --json` lists it: `name`, `domain`, `default` (left out when
/// the default is derived from the run), `help` and `column`.
extension ParameterSpec: Encodable {
    private enum CodingKeys: String, CodingKey { case name, domain, defaultValue = "default", help, column }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(domain, forKey: .domain)
        try c.encodeIfPresent(defaultValue, forKey: .defaultValue)
        try c.encode(help, forKey: .help)
        try c.encode(column, forKey: .column)
    }
}

/// A policy's parameter values after resolution: every declared parameter with a default or a
/// user value, typed and range-checked. Read with the typed accessors.
public struct ParameterValues: Sendable, Hashable, Codable {
    public var values: [String: ParameterValue]
    public init(_ values: [String: ParameterValue] = [:]) { self.values = values }

    public subscript(_ name: String) -> ParameterValue? { values[name] }

    public func int(_ name: String) -> Int {
        if case let .integer(v)? = values[name] { return v }
        preconditionFailure("parameter \(name) is not a resolved integer")
    }
    public func real(_ name: String) -> Double? {
        switch values[name] {
        case let .real(v)?: v
        case let .integer(v)?: Double(v)
        default: nil
        }
    }
    public func choice<E: RawRepresentable>(_ name: String, as: E.Type = E.self) -> E where E.RawValue == String {
        if case let .choice(s)? = values[name], let v = E(rawValue: s) { return v }
        preconditionFailure("parameter \(name) is not a resolved choice of \(E.self)")
    }
    public func ints(_ name: String) -> [Int] {
        if case let .integers(v)? = values[name] { return v }
        return []
    }

    /// `name=value;…`, sorted by name, parameters without a value left out (the `params` column).
    public var text: String {
        values.keys.sorted().compactMap { k in
            guard let v = values[k] else { return nil }
            if case let .integers(list) = v, list.isEmpty { return nil }
            return "\(k)=\(v)"
        }.joined(separator: ";")
    }
}

/// What a policy is, as far as the simulator, the CLI and the figures care.
public struct PolicyTraits: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// It merges evicted tokens itself (it then refuses `--merge`).
    public static let merges = PolicyTraits(rawValue: 1 << 0)
    /// It spends part of `C` on the recent window `r` (`--recent-share`, `--recent-ratio`).
    public static let usesRecent = PolicyTraits(rawValue: 1 << 1)
    /// Every head keeps exactly `min(C, P)` positions.
    public static let keepsExactlyC = PolicyTraits(rawValue: 1 << 2)
    /// All KV heads keep the same positions.
    public static let sharedByHeads = PolicyTraits(rawValue: 1 << 3)
    /// A reference line rather than a method (the full cache, the oracle).
    public static let reference = PolicyTraits(rawValue: 1 << 4)
}

/// Everything a policy says about itself, once: the registry, the CLI, `kvscope policies`, the
/// result columns, the figures' styles and the tests are derived from it.
public struct PolicyDeclaration: Sendable {
    /// A policy that is another registry policy under a merge (the official LOOK-M classes).
    public struct Composition: Sendable, Hashable {
        public var base: String
        public var merge: MergeStrategy
        public init(base: String, merge: MergeStrategy) {
            self.base = base
            self.merge = merge
        }
    }

    /// The kebab-case registry id.
    public var id: String
    /// One line for listings.
    public var summary: String
    /// The paper (and, where it reproduces one, the official code).
    public var paper: String
    /// The official LOOK-M `kv_mode`, for the policies of that repository.
    public var officialMode: String?
    public var parameters: [ParameterSpec]
    public var requirements: Requirements
    public var traits: PolicyTraits
    /// Set when the policy is `base` under `merge`: results then show that base and merge.
    public var composition: Composition?
    /// The rule in full, for users (`kvscope policies ID`, the policy catalogue): the formula,
    /// ties, early exits, the official code's quirks.
    public var rule: String
    /// The colour of its lines and marks in figures (24-bit RGB).
    public var color: UInt32

    public init(
        id: String, summary: String, paper: String, officialMode: String? = nil, parameters: [ParameterSpec] = [],
        requirements: Requirements, traits: PolicyTraits, composition: Composition? = nil, color: UInt32, rule: String
    ) {
        self.id = id
        self.summary = summary
        self.paper = paper
        self.officialMode = officialMode
        self.parameters = parameters
        self.requirements = requirements
        self.traits = traits
        self.composition = composition
        self.rule = rule
        self.color = color
    }

    public func parameter(_ name: String) -> ParameterSpec? { parameters.first { $0.name == name } }

    /// The base policy id results and figures group by (`text-prior` for `lookm`).
    public var baseID: String { composition?.base ?? id }
}

/// A policy type that declares itself and is built from resolved parameter values.
/// The registry is the list of these types.
public protocol DeclaredPolicy: CachePolicy {
    static var declaration: PolicyDeclaration { get }
    /// Builds the policy; `parameters` holds every declared parameter (defaults filled in).
    init(parameters: ParameterValues) throws
}

extension DeclaredPolicy {
    public var id: String { Self.declaration.id }
    public var requirements: Requirements { Self.declaration.requirements }
}
