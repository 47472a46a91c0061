import Testing
@testable import KVPlot

@Suite struct NormalizationAndTicksTests {
    @Test func logNormalizationMapsDecades() {
        let n = Normalization.log(1e-4 ... 1)
        #expect(abs(n(1e-4) - 0) < 1e-12)
        #expect(abs(n(1e-2) - 0.5) < 1e-12)
        #expect(n(1) == 1)
        #expect(n(0) == 0)  // non-positive → lowest colour
        #expect(n(10) == 1)  // clamped
        #expect(n(.nan).isNaN)  // NaN stays NaN → mask
    }

    @Test func linearAndPowerNormalization() {
        #expect(Normalization.linear(0 ... 2)(0.5) == 0.25)
        #expect(abs(Normalization.power(gamma: 0.5, 0 ... 1)(0.25) - 0.5) < 1e-12)
        #expect(Normalization.power(gamma: 0.5, 0 ... 1)(-1) == 0)
    }

    @Test func autoLogTakesFirstPercentileFlooredAtOneMillionth() {
        var values = [Float](repeating: 0, count: 50)
        values += (1 ... 100).map { Float($0) * 1e-3 }
        let n = Normalization.autoLog(values)
        #expect(n.range.lowerBound == Double(Float(1e-3)) || abs(n.range.lowerBound - 1e-3) < 1e-9)
        #expect(Normalization.autoLog([Float(1e-9), 1e-9]).range.lowerBound == 1e-6)
    }

    @Test func niceStepsAndLinearTicks() {
        #expect(Ticks.niceStep(span: 1, target: 5) == 0.2)
        #expect(Ticks.niceStep(span: 10, target: 4) == 2.5)
        #expect(Ticks.niceStep(span: 4096, target: 5) == 1000)
        #expect(Ticks.linear(0 ... 1).map(\.label) == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        #expect(Ticks.linear(0 ... 10, target: 4).map(\.label) == ["0.0", "2.5", "5.0", "7.5", "10.0"])
        #expect(Ticks.linear(0 ... 31, target: 4).map(\.label) == ["0", "10", "20", "30"])
        #expect(Ticks.linear(0 ... 31, target: 3).map(\.label) == ["0", "20"])
        #expect(Ticks.linear(-1 ... 1, target: 2).map(\.label) == ["-1", "0", "1"])
    }

    @Test func logTicksAreDecades() {
        let t = Ticks.log(1e-4 ... 1)
        #expect(t.map(\.label) == ["1e-4", "1e-3", "1e-2", "1e-1", "1"])
        #expect(t.map(\.value) == [1e-4, 1e-3, 1e-2, 1e-1, 1])
        #expect(Ticks.log(1 ... 1e5).map(\.label) == ["1", "10", "100", "1000", "1e4", "1e5"])
        // Many decades thin out, keeping the top one.
        let wide = Ticks.log(1e-12 ... 1, target: 3)
        #expect(wide.count <= 7 && wide.last?.label == "1")
    }

    @Test func scaleFractions() {
        #expect(Scale.log(1e-4 ... 1).fraction(1e-3) == 0.25)
        #expect(Scale.linear(10 ... 20).fraction(15) == 0.5)
        let axis = Axis(scale: .linear(0 ... 10), reversed: true)
        let plot = Rect(x: 0, y: 100, width: 50, height: 200)
        #expect(axis.coordinate(0, in: plot, side: .left) == 100)  // reversed: 0 at the top
        #expect(Axis(scale: .linear(0 ... 10)).coordinate(0, in: plot, side: .left) == 300)
    }
}

@Suite struct PolicyStyleTests {
    @Test func declaredColourAndMergeStyles() {
        let plain = PolicyStyle.declared(color: 0x0072B2, merge: nil)
        #expect(plain.color == RGB(hex: 0x0072B2) && plain.marker == .circle && plain.dash.isEmpty)
        let pivotal = PolicyStyle.declared(color: 0xD55E00, merge: "pivotal")
        #expect(pivotal.color == RGB(hex: 0xD55E00) && pivotal.marker == .square && !pivotal.dash.isEmpty)
        #expect(PolicyStyle.declared(color: 0x009E73, merge: "average").marker == .triangle)
        #expect(PolicyStyle.declared(color: 0x009E73, merge: "weighted").marker == .diamond)
        #expect(PolicyStyle.declared(color: 0x009E73, merge: "none") == PolicyStyle.declared(color: 0x009E73, merge: nil))
        let full = PolicyStyle.declared(color: 0x000000, merge: nil, reference: true)
        #expect(full.color == .black && full.marker == .none && full.dash == [4.5, 2.25])
        let oracle = PolicyStyle.declared(color: 0x7F7F7F, merge: nil, reference: true)
        #expect(oracle.marker == .none && oracle.dash != full.dash)
    }

    @Test func bareLabelColourIsStableAndIndependentOfOrder() {
        let a = PolicyStyle.of("my-new-policy")
        _ = PolicyStyle.of("another")
        #expect(PolicyStyle.of("my-new-policy") == a)
        #expect(PolicyStyle.fallbackColors.contains(a.color.hex))
    }
}
