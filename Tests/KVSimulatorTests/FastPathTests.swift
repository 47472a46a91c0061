import CKernels
import Foundation
import KVPolicies
import KVTrace
import Testing
@testable import KVSimulator

/// The vector kernels and shared paths of the replay against the direct computation, bit for bit.
@Suite struct FastPathTests {
    /// A deterministic stream of doubles in [-1, 1) (and a few exact zeros and negative zeros).
    struct Draw {
        var state: UInt64
        mutating func next() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let u = Double(state >> 11) / Double(1 << 53)
            if state % 97 == 0 { return state % 2 == 0 ? 0 : -0.0 }
            return 2 * u - 1
        }
    }

    @Test func accumulationKernelMatchesTheScalarLoop() {
        var draw = Draw(state: 3)
        for (d, rows, n) in [(128, 16, 300), (16, 9, 7), (24, 5, 40), (8, 3, 1), (12, 8, 20)] {
            let T = 2 * n + 3
            let w = (0 ..< rows * T).map { _ in draw.next() }
            let pos = (0 ..< n).map { 2 * $0 + ($0 % 3 == 0 ? 1 : 0) }.reversed().map { $0 }
            let v64 = (0 ..< T * d).map { _ in draw.next() * 8 }
            let v32 = v64.map { Float($0) }
            let v16 = v64.map { Float16($0) }
            for subtract: Int32 in [0, 1] {
                let start = (0 ..< rows * d).map { _ in draw.next() }
                func run(_ f: (UnsafeRawPointer, Int32, UnsafeMutablePointer<Double>) -> Void) -> [[UInt64]] {
                    var out: [[UInt64]] = []
                    for (vt, raw) in [(CK_F64, v64.withUnsafeBytes { Data($0) }), (CK_F32, v32.withUnsafeBytes { Data($0) }), (CK_F16, v16.withUnsafeBytes { Data($0) })] {
                        var acc = start
                        raw.withUnsafeBytes { rb in acc.withUnsafeMutableBufferPointer { f(rb.baseAddress!, Int32(vt), $0.baseAddress!) } }
                        out.append(acc.map(\.bitPattern))
                    }
                    return out
                }
                let fast = run { v, vt, acc in ck_accum_rows(rows, d, w, T, pos, n, v, vt, acc, subtract) }
                let slow = run { v, vt, acc in ck_accum_rows_portable(rows, d, w, T, pos, n, v, vt, acc, subtract) }
                #expect(fast == slow, "d \(d), rows \(rows), n \(n), subtract \(subtract)")
            }
        }
    }

    /// `ck_merge_rows` (the merge formula) against the scalar loop in Swift and in C, for every
    /// element type, repeated slots, a slot merged once and dimensions off the vector width.
    @Test func mergeKernelMatchesTheFormula() {
        var draw = Draw(state: 11)
        for (d, T) in [(128, 40), (16, 9), (12, 30), (8, 5)] {
            let x64 = (0 ..< T * d).map { _ in draw.next() * 4 }
            let x32 = x64.map { Float($0) }, x16 = x64.map { Float16($0) }
            // Contributions into three slots (rows 0, 1, 2): row 1 receives one, the others several.
            let src = [1, 3, 4, 0, T - 1, 2, T / 2], row = [0, 2, 0, 1, 2, 2, 0]
            let pivot = [T - 2, 1, 0], count = [3, 1, 3]
            let a = src.map { _ in draw.next() }, b = src.map { _ in draw.next() }
            for (vt, raw) in [(CK_F64, x64.withUnsafeBytes { Data($0) }), (CK_F32, x32.withUnsafeBytes { Data($0) }), (CK_F16, x16.withUnsafeBytes { Data($0) })] {
                let x = vt == CK_F64 ? x64 : vt == CK_F32 ? x32.map(Double.init) : x16.map(Double.init)
                var want = [Double](repeating: 0, count: 3 * d)
                for k in src.indices {
                    for e in 0 ..< d { want[row[k] * d + e] += a[k] * x[src[k] * d + e] + b[k] * x[pivot[row[k]] * d + e] }
                }
                for r in 0 ..< 3 { for e in 0 ..< d { want[r * d + e] = (x[pivot[r] * d + e] + want[r * d + e]) / Double(1 + count[r]) } }
                var fast = [Double](repeating: .nan, count: 3 * d), slow = fast, grouped = fast
                // The same contributions grouped by row, each row's in order (`ck_merge_rows_grouped`).
                let order = src.indices.sorted { (row[$0], $0) < (row[$1], $1) }
                let start = [0, 3, 4, 7]
                raw.withUnsafeBytes { rb in
                    ck_merge_rows(d, src.count, src, row, a, b, rb.baseAddress!, Int32(vt), 3, pivot, count, &fast)
                    ck_merge_rows_portable(d, src.count, src, row, a, b, rb.baseAddress!, Int32(vt), 3, pivot, count, &slow)
                    ck_merge_rows_grouped(
                        d, src.count, order.map { src[$0] }, order.map { row[$0] }, order.map { a[$0] }, order.map { b[$0] },
                        rb.baseAddress!, Int32(vt), 3, start, pivot, count, &grouped)
                }
                #expect(fast.map(\.bitPattern) == want.map(\.bitPattern), "d \(d) type \(vt)")
                #expect(slow.map(\.bitPattern) == want.map(\.bitPattern), "d \(d) type \(vt)")
                #expect(grouped.map(\.bitPattern) == want.map(\.bitPattern), "grouped: d \(d) type \(vt)")
            }
        }
    }

    @Test func dotKernelMatchesDot() {
        var draw = Draw(state: 11)
        for d in [128, 16, 13, 8, 5] {
            let r = 3, c = 9
            let a = (0 ..< r * d).map { _ in draw.next() }, b = (0 ..< c * d).map { _ in draw.next() * 1e3 }
            var fast = [Double](repeating: 0, count: r * c), slow = fast
            ck_dot_rows(r, c, d, a, d, b, d, &fast, c)
            ck_dot_rows_portable(r, c, d, a, d, b, d, &slow, c)
            var direct = [Double](repeating: 0, count: r * c)
            a.withUnsafeBufferPointer { ab in
                b.withUnsafeBufferPointer { bb in
                    for i in 0 ..< r { for j in 0 ..< c { direct[i * c + j] = dot(ab.baseAddress! + i * d, bb.baseAddress! + j * d, d) } }
                }
            }
            #expect(fast.map(\.bitPattern) == direct.map(\.bitPattern), "d \(d)")
            #expect(slow.map(\.bitPattern) == direct.map(\.bitPattern), "d \(d)")
        }
    }

    @Test func gatheredSumsMatchTheScalarLoop() {
        var draw = Draw(state: 5)
        for (rows, n) in [(16, 50), (3, 7), (11, 1), (8, 0)] {
            let T = 60
            let w = (0 ..< rows * T).map { _ in draw.next() }
            let pos = (0 ..< n).map { ($0 * 37) % T }
            for subtract: Int32 in [0, 1] {
                var fast = (0 ..< rows).map { _ in draw.next() }
                var slow = fast
                ck_gather_sum(rows, w, T, pos, n, &fast, subtract)
                for r in 0 ..< rows { for p in pos { slow[r] = subtract == 1 ? slow[r] - w[r * T + p] : slow[r] + w[r * T + p] } }
                #expect(fast.map(\.bitPattern) == slow.map(\.bitPattern))
            }
            // The causal form: row r sees positions ≤ firstRow + r only.
            var causal = [Double](repeating: 0, count: rows), direct = causal
            let first = T / 3
            w.withUnsafeBufferPointer { wb in
                Kernels.gatherSum(firstRow: first, rows: rows, weights: wb.baseAddress!, ldw: T, positions: pos, into: &causal, subtract: false)
            }
            for r in 0 ..< rows { for p in pos where p <= first + r { direct[r] += w[r * T + p] } }
            #expect(causal.map(\.bitPattern) == direct.map(\.bitPattern))
        }
    }

    /// `Kernels.causal` hands each row exactly its visible columns, in list order, once each, for
    /// ascending lists (blocked head, per-row tail), partitioned unsorted ones and interleaved ones.
    @Test func causalSplitGivesEachRowItsColumnsInOrder() {
        let T = 50, rows = 9, first = 30
        let lists: [[Int]] = [
            Array(0 ..< 45), [3, 1, 2, 40, 33, 31, 38], [31, 2, 35, 7, 30], Array(0 ... 30), [44, 31], [], [5, 39, 5],
        ]
        for pos in lists {
            var seen = [[Int]](repeating: [], count: rows)
            let columns = pos.map { $0 + 100 }
            Kernels.causal(columns: columns, positions: pos, firstRow: first, rows: rows) { r, n, cols in
                #expect(!cols.isEmpty)
                for x in r ..< r + n { seen[x] += Array(cols) }
            }
            for r in 0 ..< rows {
                #expect(seen[r] == pos.filter { $0 <= first + r }.map { $0 + 100 }, "\(pos) row \(r)")
            }
            // The blocked kernels give each row the bits of its own scalar loop.
            let w = (0 ..< rows * T).map { Double(($0 * 7919) % 1000) / 997 - 0.5 }
            var sums = [Double](repeating: 0.25, count: rows), direct = sums
            w.withUnsafeBufferPointer { wb in
                Kernels.gatherSum(firstRow: first, rows: rows, weights: wb.baseAddress!, ldw: T, positions: pos, into: &sums, subtract: false)
            }
            for r in 0 ..< rows { for p in pos where p <= first + r { direct[r] += w[r * T + p] } }
            #expect(sums.map(\.bitPattern) == direct.map(\.bitPattern), "\(pos)")
        }
    }

    /// `o'` of a merging policy (one weight matrix over every slot, one accumulation) against the
    /// slot-by-slot formula: merged keys and values by the DecisionApplier formula, `exp(s·q·k' − m)`
    /// per merged slot, `w[i, p]` per plain one, in ascending position order.
    @Test func mergedReplayMatchesSlotBySlot() throws {
        // Future rows see every slot; proxy rows (no future) see the slots up to their own position.
        for (dim, kvHeads, seed, future) in [(32, 2, 7 as UInt64, 6), (12, 4, 3, 6), (16, 2, 5, 0), (8, 4, 9, 0)] {
            let t = TestTrace(
                .init(layers: 1, heads: 4, kvHeads: kvHeads, dim: dim, prefill: 40, future: future, spans: [6 ..< 18, 22 ..< 30], seed: seed))
            for (id, b) in [("lookm", 0.2), ("lookm-avg", 0.3), ("lookm-weighted", 0.5), ("lookm", 0.4)] {
                let ctx = LayerContext(info: t.info, tensors: try t.layer(0), budget: .fraction(b))
                let ec = EvaluationContext(ctx, settings: .init())
                let d = try PolicyRegistry.make(id).decide(ctx)
                #expect(d.mergeCount > 0, "\(id) merges")
                if future == 0 { #expect(d.heads.allSatisfy { $0.kept.contains { $0 > ec.rows.lowerBound } }, "slots past the first row") }
                let replay = ReplayLayer(d, merges: true, context: ec)
                let K = try #require(ec.keyRows), V = try #require(ec.valueRows), Q = try #require(ec.queries)
                let R = ec.rowCount, D = ec.headDim
                for h in 0 ..< ec.queryHeads {
                    let g = ec.kvHeadOfQueryHead[h], head = d.heads[g]
                    func vec(_ x: KVRows, _ p: Int) -> [Double] {
                        var out = [Double](repeating: 0, count: D)
                        out.withUnsafeMutableBufferPointer { x.load(g, p, into: $0.baseAddress!) }
                        return out
                    }
                    var sumK: [Int: [Double]] = [:], sumV: [Int: [Double]] = [:], n: [Int: Int] = [:]
                    for m in head.merges {
                        let ks = vec(K, m.source), kp = vec(K, head.kept[m.slot]), vs = vec(V, m.source), vp = vec(V, head.kept[m.slot])
                        var ak = sumK[m.slot] ?? [Double](repeating: 0, count: D), av = sumV[m.slot] ?? ak
                        for e in 0 ..< D {
                            ak[e] += m.sourceWeight * ks[e] + m.pivotWeight * kp[e]
                            av[e] += m.sourceWeight * vs[e] + m.pivotWeight * vp[e]
                        }
                        sumK[m.slot] = ak; sumV[m.slot] = av; n[m.slot, default: 0] += 1
                    }
                    for r in 0 ..< R {
                        var o = [Double](repeating: 0, count: D), z = 0.0
                        for s in head.kept.indices.sorted(by: { head.kept[$0] < head.kept[$1] }) {
                            let p = head.kept[s]
                            guard p <= ec.rows.lowerBound + r else { continue }
                            let wt: Double, x: [Double]
                            if let ak = sumK[s], let av = sumV[s] {
                                let div = Double(1 + n[s]!), kp = vec(K, p), vp = vec(V, p)
                                let k2 = (0 ..< D).map { (kp[$0] + ak[$0]) / div }
                                x = (0 ..< D).map { (vp[$0] + av[$0]) / div }
                                let l = Q.withUnsafeBufferPointer { qb in k2.withUnsafeBufferPointer { dot(qb.baseAddress! + (h * R + r) * D, $0.baseAddress!, D) } }
                                wt = Foundation.exp(ec.scale * l - ec.rowMax[h * R + r])
                            } else {
                                wt = ec.weights[(h * R + r) * ec.seqLen + p]
                                x = vec(V, p)
                            }
                            z += wt
                            for e in 0 ..< D { o[e] = o[e].addingProduct(wt, x[e]) }  // ck_accum_rows: one fused multiply-add a step
                        }
                        let zt = z + ec.tailZ[h * R + r]
                        let want = (0 ..< D).map { (o[$0] + ec.tailNum[(h * R + r) * D + $0]) / zt }
                        let got = Array(replay.outputs[h][r * D ..< (r + 1) * D])
                        #expect(got.map(\.bitPattern) == want.map(\.bitPattern), "\(id) dim \(dim) head \(h) row \(r)")
                    }
                }
            }
        }
    }

    /// Every budget's top-k from the layer's one ranking equals a fresh `Selection.topK`, with ties,
    /// signed zeros and NaN scores.
    @Test func sharedRankingMatchesFreshTopK() {
        var draw = Draw(state: 9)
        let rows = 3, count = 200
        var values = (0 ..< rows * count).map { _ in (draw.next() * 4).rounded() / 4 }
        for i in stride(from: 5, to: values.count, by: 41) { values[i] = .nan }
        let s = ScoreMatrix(rows: rows, count: count, values: values)
        let ranking = ScoreRanking(s)
        for r in 0 ..< rows {
            for limit in [0, 1, 37, 150, 200] {
                for k in [0, 1, 10, 36, 37, 120, 500] {
                    let fresh = Selection.topK(Array(0 ..< limit), k: k, score: { s[r, $0] })
                    #expect(ranking.top(r, k: k, below: limit) == fresh, "row \(r), limit \(limit), k \(k)")
                }
            }
        }
    }
}
