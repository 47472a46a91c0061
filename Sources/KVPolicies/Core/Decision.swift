/// One merge contribution: `K'[kept[slot]] += sourceWeight·K[source] + pivotWeight·K[kept[slot]]`,
/// and the slot's count of contributions grows by one. The applier divides by `1 + count`.
///
/// Pivotal: `a = b = ½`. Averaged: `a = 1, b = 0` (the source may be rank-mismatched in `code`
/// mode). Weighted: `a = μ, b = 0`.
///
/// Built only by the merge step (`Merging.swift`) through the memberwise init; tests build one
/// with `@testable import KVPolicies`.
public struct MergeContribution: Sendable, Equatable, Codable {
    /// Original position of the evicted token whose key and value are added.
    public var source: Int
    /// Index into the head's kept list (cache order).
    public var slot: Int
    public var sourceWeight: Double
    public var pivotWeight: Double
    /// Cosine between the source key and the target's key, as used for the assignment.
    public var cosine: Double
}

/// The nearest-kept-key assignment of every evicted token of one head (docs/policies.md#the-merge-wrapper steps 1–2).
public struct MergeAssignment: Sendable, Equatable, Codable {
    /// `t[e]`: for each evicted rank, the argmax kept slot (lowest slot on ties).
    public var target: [Int]
    /// `μ[e]`: the maximum cosine.
    public var cosine: [Double]
    /// The merge filter per evicted rank (all true for pivotal).
    public var filter: [Bool]
    public init(target: [Int], cosine: [Double], filter: [Bool]) {
        self.target = target
        self.cosine = cosine
        self.filter = filter
    }
}

/// The decision for one KV head.
public struct HeadDecision: Sendable, Equatable, Codable {
    /// Surviving positions, in cache order.
    public var kept: [Int]
    /// Removed positions, ascending.
    public var evicted: [Int]
    /// Merge contributions (empty for eviction-only policies).
    public var merges: [MergeContribution]
    /// The merge assignment, when a merge ran.
    public var assignment: MergeAssignment?

    public init(kept: [Int], evicted: [Int], merges: [MergeContribution] = [], assignment: MergeAssignment? = nil) {
        self.kept = kept
        self.evicted = evicted
        self.merges = merges
        self.assignment = assignment
    }

    /// Builds a head decision from a kept list in cache order; evicted = the rest of `0 ..< P`.
    public init(kept: [Int], prefill P: Int) {
        var mark = [Bool](repeating: false, count: P)
        for k in kept { mark[k] = true }
        self.init(kept: kept, evicted: (0 ..< P).filter { !mark[$0] })
    }

    /// For each evicted position (ascending), the slot it merged into, or −1 if it was dropped; a
    /// source that appears in several contributions maps to the slot of its last one. Built through
    /// an array indexed by position (`0 ... max(evicted)`), not a dictionary.
    public var mergeTarget: [Int] {
        guard let top = evicted.max(), top >= 0 else { return evicted.map { _ in -1 } }
        var slotOf = [Int](repeating: -1, count: top + 1)
        for m in merges where m.source >= 0 && m.source <= top { slotOf[m.source] = m.slot }
        return evicted.map { $0 >= 0 ? slotOf[$0] : -1 }
    }
}

/// Something worth knowing about a decision: an early exit, a clamped window, an extension.
public struct DecisionNote: Sendable, Hashable, Codable, CustomStringConvertible {
    public var code: String
    public var message: String
    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }

    public static let earlyExit = DecisionNote("early-exit", "P ≤ C: the cache is kept whole")
    public static let gqaExtension = DecisionNote(
        "gqa-extension", "KVH ≠ H: the official code assumes one KV head per query head; scores were aggregated per KV head")
    public static let noImage = DecisionNote(
        "no-image", "the trace has no non-text span: the official pipeline would not have compressed this prompt")
    public static let overBudget = DecisionNote(
        "over-budget", "the text prior (official code) keeps every text token: the cache is larger than the nominal C")
}

/// The decision for one layer: one `HeadDecision` per KV head (ragged for Ada-KV).
public struct LayerDecision: Sendable, Equatable, Codable {
    public var layer: Int
    public var heads: [HeadDecision]
    /// Nominal capacity `C` (per head; the mean for per-head allocators).
    public var nominal: Int
    /// The compression point `P`.
    public var prefill: Int
    public var notes: [DecisionNote]

    public init(layer: Int, heads: [HeadDecision], nominal: Int, prefill: Int, notes: [DecisionNote] = []) {
        self.layer = layer
        self.heads = heads
        self.nominal = nominal
        self.prefill = prefill
        self.notes = notes
    }

    /// `C_act` per KV head.
    public var actual: [Int] { heads.map(\.kept.count) }
    /// True when every head keeps the same number of positions.
    public var isUniform: Bool { Set(actual).count <= 1 }
    /// Total merge contributions over heads.
    public var mergeCount: Int { heads.reduce(0) { $0 + $1.merges.count } }
    /// Merges per KV head, the mean over the layer's KV heads (0 with no heads).
    public var meanMerges: Double { heads.isEmpty ? 0 : Double(mergeCount) / Double(heads.count) }

    /// Every head keeps `0 ..< P`.
    public static func whole(layer: Int, kvHeads: Int, prefill P: Int, nominal: Int, notes: [DecisionNote] = []) -> LayerDecision {
        LayerDecision(
            layer: layer, heads: Array(repeating: HeadDecision(kept: Array(0 ..< P), evicted: []), count: kvHeads),
            nominal: nominal, prefill: P, notes: notes)
    }
}
