import Foundation
import KVTrace
@testable import KVPolicies

/// The LOOK-M oracle fixtures beside the project (`../shared/fixtures/lookm-oracle`).
enum Fixtures {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let dir = repoRoot.appendingPathComponent("../shared/fixtures/lookm-oracle").standardizedFileURL
    static let sharedExists = FileManager.default.fileExists(atPath: dir.appendingPathComponent("manifest.json").path)

    static let cases = ["s1_text_heavy", "s2_text_light", "s4_rounding"]

    /// Fixture policy name → (KVScope id, parameters).
    static let policies: [String: (id: String, params: [String: String])] = [
        "h2o": ("h2o", [:]),
        "pivot_merge": ("pivot-merge", [:]),
        "avg_merge": ("avg-merge", [:]),
        "weighted_merge": ("weighted-merge", [:]),
        "text_prior_h2o": ("text-prior", [:]),
        "text_prior_pivot_merge": ("lookm", [:]),
        "text_prior_avg_merge": ("lookm-avg", [:]),
        "text_prior_weighted_merge": ("lookm-weighted", [:]),
        "snapkv": ("snapkv-lookm", [:]),
        "mean_h2o_cache_class": ("h2o", ["score": "mean"]),
    ]
    static let policyNames = policies.keys.sorted()

    static func url(_ c: String) -> URL { dir.appendingPathComponent(c + ".npz") }

    static var mapping: BareArrayMapping {
        var m = BareArrayMapping()
        m.attn = "in_attention"
        m.keys = "in_keys"
        m.values = "in_values"
        m.queries = "in_queries"
        m.tokenKind = "in_token_kind"
        return m
    }

    /// The manifest's per-case policy names.
    static func manifestPolicies(_ c: String) throws -> [String] {
        let data = try Data(contentsOf: dir.appendingPathComponent("manifest.json"))
        let obj = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let cs = obj["cases"] as! [[String: Any]]
        let entry = cs.first { ($0["case"] as? String) == c }!
        return (entry["policies"] as! [String: Any]).keys.sorted()
    }

    struct Loaded {
        let archive: NPZArchive
        let trace: BareTrace
        let ratios: [Double]
        func has(_ key: String) -> Bool { archive.keys.contains(key) }
        func doubles(_ key: String) throws -> [Double] { try archive.array(key).doubles() }
        func ints(_ key: String) throws -> [Int] { try archive.array(key).ints() }
        func shape(_ key: String) throws -> [Int] { try archive.array(key).shape }
    }

    static func load(_ c: String) throws -> Loaded {
        let z = try NPZArchive(url(c))
        let trace = try BareTrace(url(c), mapping: mapping)
        return Loaded(archive: z, trace: trace, ratios: try z.array("in_ratios").doubles())
    }

    static func context(_ f: Loaded, fidelity: Fidelity = .code, budget: BudgetSpec? = nil) throws -> LayerContext {
        try LayerContext(
            trace: f.trace, layer: 0, budget: budget ?? .ratios(heavy: f.ratios[0], recent: f.ratios[1]),
            options: PolicyOptions(fidelity: fidelity))
    }
}

/// Rows of a row-major `[rows, n]` array.
func rowsOf<T>(_ a: [T], rows: Int) -> [[T]] {
    let n = rows == 0 ? 0 : a.count / rows
    return (0 ..< rows).map { Array(a[$0 * n ..< ($0 + 1) * n]) }
}

func maxAbsDiff(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
