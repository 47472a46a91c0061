/// One policy's results over an hh × recent ratio grid, for the ratio map figure: the axis
/// values (ascending), and per cell (row-major, `recent` rows × `hh` columns) the setting's
/// result: the metric value, the actual kept ratio, whether the setting is safe, and why a value
/// is missing.
public struct RatioGrid: Sendable, Hashable {
    /// What one cell holds: the result of the setting `(hh[col], recent[row])`.
    public struct Setting: Sendable, Hashable {
        /// The metric's value; nil where it is undefined, not measured or not run.
        public var value: Double?
        /// The actual kept ratio; nil where unknown.
        public var kept: Double?
        /// Whether the setting meets every condition; nil when no conditions were given.
        public var safe: Bool?
        /// Why `value` is missing (`not run`, the row's note, …); nil where there is a value.
        public var note: String? = "not run"
    }
    /// A cell: row (index into `recent`) and column (index into `hh`).
    public struct Cell: Sendable, Hashable { public var row: Int; public var col: Int }

    public var trace: String
    public var policy: String
    public var params: String
    public var fidelity: String
    public var metric: String
    public var hh: [Double]
    public var recent: [Double]
    /// `[recent.count × hh.count]`, row `r` = `recent[r]`.
    public var settings: [Setting]
    public var cheapest: Cell?

    /// The metric value per cell (same layout as `settings`).
    public var values: [Double?] { settings.map(\.value) }
    /// The actual kept ratio per cell.
    public var kept: [Double?] { settings.map(\.kept) }
    /// The verdict per cell; nil when no conditions were given.
    public var safe: [Bool]? {
        let verdicts = settings.compactMap(\.safe)
        return verdicts.count == settings.count ? verdicts : nil
    }
    /// Notes of cells without a value (or not run), nil elsewhere.
    public var notes: [String?] { settings.map(\.note) }

    /// The grids of `rows` for `policy` and `metric` (a label such as `image_recall[1]` selects
    /// the image), one per trace × parameters × fidelity, from the all-layers rows over all heads
    /// with an `hh_ratio`; with `safe`, its verdicts mark the cells. Empty when nothing matches.
    public static func grids(_ rows: [ResultRow], policy: String, metric: String, safe: SafeSet? = nil) -> [RatioGrid] {
        var name = metric
        var image: Int?
        if let c = try? SafeCondition.parse(metric + ">=0") { name = c.metric; image = c.image }
        let mine = rows.filter { $0.policy == policy && $0.layer == nil && $0.head == nil && $0.hhRatio != nil && $0.recentRatio != nil }
        var keys: [String] = []
        for r in mine where !keys.contains(r.trace + "\u{1}" + r.params + "\u{1}" + r.fidelity) {
            keys.append(r.trace + "\u{1}" + r.params + "\u{1}" + r.fidelity)
        }
        var verdict: [String: (safe: Bool, cheapest: Bool)] = [:]
        for g in safe?.groups ?? [] { for s in g.settings { verdict[s.row.trace + "\u{1}" + s.row.combinationKey] = (s.safe, s.cheapest) } }
        return keys.map { key in
            let cell = mine.filter { $0.trace + "\u{1}" + $0.params + "\u{1}" + $0.fidelity == key }
            let hh = Array(Set(cell.compactMap(\.hhRatio))).sorted(), rc = Array(Set(cell.compactMap(\.recentRatio))).sorted()
            let n = hh.count * rc.count
            var g = RatioGrid(
                trace: cell[0].trace, policy: policy, params: cell[0].params, fidelity: cell[0].fidelity, metric: metric,
                hh: hh, recent: rc, settings: Array(repeating: Setting(safe: safe == nil ? nil : false), count: n), cheapest: nil)
            for r in cell {
                guard let c = hh.firstIndex(of: r.hhRatio!), let w = rc.firstIndex(of: r.recentRatio!) else { continue }
                let i = w * hh.count + c
                if r.actualTokens.isFinite { g.settings[i].kept = r.keptRatio }
                if let v = verdict[r.trace + "\u{1}" + r.combinationKey] {
                    g.settings[i].safe = v.safe
                    if v.cheapest { g.cheapest = Cell(row: w, col: c) }
                }
                if r.metric == name && r.image == image {
                    let value = r.value.flatMap { $0.isFinite ? $0 : nil }
                    g.settings[i].value = value
                    g.settings[i].note = value == nil ? (r.note ?? "undefined") : nil
                }
            }
            for i in 0 ..< n where g.settings[i].value == nil && g.settings[i].note == "not run" && g.settings[i].kept != nil {
                g.settings[i].note = "\(metric) not in the results"
            }
            return g
        }
    }
}
