import Foundation
import Testing
@testable import KVPlot

/// The ratio map draws a colour scale that fits its values and a legend of only what it draws.
@Suite struct RatioMapTests {
    static func texts(_ f: RatioMapFigure) -> [String] { LayoutAudit(f.build()).textBoxes.map(\.string) }

    static func figure(values: [Double?], kept: [Double?], safe: [Bool]?, cheapest: RatioMapFigure.Cell?) -> RatioMapFigure {
        RatioMapFigure(
            hh: [0.05, 0.1], recent: [0.05, 0.1], values: values, kept: kept, safe: safe, cheapest: cheapest,
            metric: "attention recall", title: "t", subtitle: ["s"])
    }

    @Test("equal values in every cell get a scale of ±1 % around them, not ±0.5")
    func equalValues() {
        let f = Self.figure(values: [0.923, 0.923, 0.923, 0.923], kept: [0.2, 0.2, 0.2, 0.2], safe: nil, cheapest: nil)
        guard case let .linear(r) = f.resolvedNormalization else { Issue.record("not linear"); return }
        #expect(r.lowerBound < 0.923 && r.upperBound > 0.923)
        #expect(r.upperBound <= 0.94 && r.lowerBound >= 0.91, "\(r)")
        // Different values keep their own range.
        let g = Self.figure(values: [0.5, 0.6, 0.7, 0.9], kept: [0.1, 0.2, 0.3, 0.4], safe: nil, cheapest: nil)
        #expect(g.resolvedNormalization == .linear(0.5 ... 0.9))
    }

    @Test("legend entries only for what is drawn")
    func legendNamesWhatIsDrawn() {
        // No iso-line (one kept ratio), no safe cell: no legend at all.
        let none = Self.texts(
            Self.figure(values: [0.9, 0.91, 0.92, 0.93], kept: [0.2, 0.2, 0.2, 0.2], safe: [false, false, false, false], cheapest: nil))
        #expect(!none.contains { $0.contains("iso-lines") || $0.contains("safe") }, "\(none)")
        // Varying kept ratio and a safe region with its cheapest cell: all three entries.
        let all = Self.texts(
            Self.figure(
                values: [0.9, 0.91, 0.96, 0.97], kept: [0.1, 0.2, 0.3, 0.4], safe: [false, false, true, true],
                cheapest: RatioMapFigure.Cell(row: 1, col: 0)))
        #expect(all.contains("kept ratio (actual), iso-lines"))
        #expect(all.contains("safe region") && all.contains("cheapest safe"), "\(all)")
    }
}
