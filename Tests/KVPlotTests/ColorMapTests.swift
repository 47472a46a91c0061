import Testing
@testable import KVPlot

@Suite struct ColorMapTests {
    static let vectors: [(ColorMap, [String])] = [
        (.viridis, ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#27ad81", "#5cc863", "#aadc32", "#fde725"]),
        (.magma, ["#000004", "#1d1147", "#51127c", "#832681", "#b73779", "#e55064", "#fb8761", "#fec287", "#fcfdbf"]),
        (.cividis, ["#00224e", "#1a386f", "#434e6c", "#61656f", "#7d7c78", "#9a9376", "#bbad6d", "#ddc858", "#fee838"]),
    ]

    @Test(arguments: vectors.map { $0.0 })
    func tableHas256Entries(_ map: ColorMap) {
        #expect(map.table.count == 256)
    }

    @Test func testVectorsAtEighths() {
        for (map, expected) in Self.vectors {
            let got = (0 ... 8).map { map.color(Double($0) / 8).description }
            #expect(got == expected, "\(map)")
        }
    }

    @Test func clampingAndNaN() {
        #expect(ColorMap.viridis.color(-3) == ColorMap.viridis.color(0))
        #expect(ColorMap.viridis.color(7) == RGB(hex: 0xFDE725))
        #expect(ColorMap.index(.nan) == 0)
        #expect(ColorMap.index(0.5) == 128)  // 127.5 rounds away from zero
    }
}
