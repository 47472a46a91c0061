import Foundation
import KVPlot

/// A fresh temporary folder per test.
func temporaryFolder(_ name: String = #function) throws -> URL {
    let safe = name.filter { $0.isLetter || $0.isNumber }
    let url = URL(fileURLWithPath: NSTemporaryDirectory())
        .appendingPathComponent("kvcairo-tests-\(safe)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The same known matrix as in KVPlotTests: 10^-(i-j) below the diagonal, clipped at 1e-4.
func knownMatrix(_ n: Int) -> [Float] {
    var m = [Float](repeating: 0, count: n * n)
    for i in 0 ..< n { for j in 0 ... i { m[i * n + j] = Float(max(1e-4, pow(10, -Double(i - j)))) } }
    return m
}

func heatmapFigure(n: Int = 24) -> Figure {
    HeatmapFigure(
        matrix: knownMatrix(n), rows: n, cols: n,
        bands: [
            ModalityBand(0 ..< 4, kind: .text), ModalityBand(4 ..< 16, kind: .image, label: "image 1"), ModalityBand(16 ..< n, kind: .text),
        ],
        title: "test heatmap", subtitle: ["log scale"]
    ).build()
}

func curvesFigure() -> Figure {
    CurvesFigure(
        curves: [Curve(policy: "h2o", x: [0.1, 0.5], y: [0.3, 0.8]), Curve(policy: "lookm", x: [0.1, 0.5], y: [0.4, 0.9])],
        metric: "attention recall", title: "curves", yRange: 0 ... 1, reference: 1
    ).build()
}

func channelsClose(_ a: RGB, _ b: RGB, tolerance: Int = 1) -> Bool {
    abs(Int(a.r) - Int(b.r)) <= tolerance && abs(Int(a.g) - Int(b.g)) <= tolerance && abs(Int(a.b) - Int(b.b)) <= tolerance
}
