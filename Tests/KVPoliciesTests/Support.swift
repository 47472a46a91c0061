import Foundation
import KVTrace
@_exported import KVTestSupport
@testable import KVPolicies

/// Mean attention recall (docs/metrics.md) of one KV head's kept set over the evaluation rows `i ≥ P`
/// and the query heads of the group: the share of each row's attention on kept or generated keys.
func attentionRecall(_ ctx: LayerContext, kvHead g: Int, kept: [Int]) throws -> Double {
    let P = ctx.compressionPoint, qr = ctx.info.shape.queryRows
    let rows = try ctx.rows(max(P, qr.lowerBound) ..< qr.upperBound)
    let keep = Set(kept)
    var total = 0.0, n = 0
    for h in ctx.info.shape.queryHeads(ofKVHead: g) {
        for i in 0 ..< rows.positions.count {
            let pos = rows.positions.lowerBound + i
            var all = 0.0, hit = 0.0
            for j in 0 ... pos {
                let a = rows[h, i, j]
                all += a
                if j >= P || keep.contains(j) { hit += a }
            }
            total += hit / all
            n += 1
        }
    }
    return total / Double(n)
}
