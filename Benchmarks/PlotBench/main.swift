// plotbench: renders a 4096×4096 attention-like map with a log norm to PNG and prints timings.
// Not a test. Run: swift run -c release plotbench [--size N] [--out path.png] [--repeat R]
// Benchmarks/heatmap_matplotlib.py does the same with matplotlib (imshow + LogNorm + savefig).
import Dispatch
import Foundation
import KVCairo
import KVPlot

struct Options {
    var size = 4096
    var out = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("kvscope-plotbench.png")
    var repeats = 3

    init(_ args: [String]) {
        var i = 1
        while i < args.count {
            let next = i + 1 < args.count ? args[i + 1] : ""
            switch args[i] {
            case "--size": size = Int(next) ?? size; i += 1
            case "--out": out = URL(fileURLWithPath: next); i += 1
            case "--repeat": repeats = max(1, Int(next) ?? repeats); i += 1
            default: break
            }
            i += 1
        }
    }
}

/// A deterministic causal attention-like matrix: an attention sink at 0, a local band near the
/// diagonal, an "image" span with its own structure, and hashed noise; rows sum to 1.
enum SyntheticAttention {
    static func make(_ n: Int) -> [Float] {
        var m = [Float](repeating: 0, count: n * n)
        let imageSpan = (n / 8) ..< (n / 8 + n / 4)
        m.withUnsafeMutableBufferPointer { buf in
            let addr = Int(bitPattern: buf.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: n) { i in
                let row = UnsafeMutablePointer<Float>(bitPattern: addr)! + i * n
                var sum: Float = 0
                for j in 0 ... i {
                    var h = UInt32(truncatingIfNeeded: i &* 73_856_093 ^ j &* 19_349_663)
                    h ^= h >> 13; h = h &* 0x5bd1_e995; h ^= h >> 15
                    let noise = Float(h & 0xFFFF) / 65536
                    let d = Float(i - j)
                    var w = 0.02 * noise * noise * noise + expf(-d / 24)
                    if j == 0 { w += 40 }
                    if imageSpan.contains(j) { w += 0.05 * noise }
                    row[j] = w
                    sum += w
                }
                let inv = 1 / sum
                for j in 0 ... i { row[j] *= inv }
            }
        }
        return m
    }
}

@main
struct PlotBench {
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    static func main() throws {
        let o = Options(CommandLine.arguments)
        let n = o.size
        var matrix: [Float] = []
        let tGen = seconds { matrix = SyntheticAttention.make(n) }
        let bands = [
            ModalityBand(0 ..< n / 8, kind: .text, label: "text"),
            ModalityBand(n / 8 ..< n / 8 + n / 4, kind: .image, label: "image 1"),
            ModalityBand(n / 8 + n / 4 ..< n, kind: .text, label: "text"),
        ]
        var best = Double.infinity, bestBuild = Double.infinity, bestDraw = Double.infinity
        for _ in 0 ..< o.repeats {
            var figure: Figure?
            let tBuild = seconds {
                figure = HeatmapFigure(
                    matrix: matrix, rows: n, cols: n, bands: bands, normalization: .log(1e-4 ... 1),
                    title: "plotbench: \(n)×\(n) attention-like map").build()
            }
            let tRender = try seconds { try render(figure!, to: o.out, format: .png(scale: 2)) }
            best = min(best, tBuild + tRender); bestBuild = min(bestBuild, tBuild); bestDraw = min(bestDraw, tRender)
        }
        // A raster-only pass (no pooling): value → log norm → viridis for all n² cells.
        var tRaster = Double.infinity
        let data = HeatmapData(values: matrix, rows: n, cols: n)
        for _ in 0 ..< o.repeats {
            tRaster = min(tRaster, seconds {
                _ = HeatmapRaster.render(data, normalization: .log(1e-4 ... 1), colorMap: .viridis, mask: .causal)
            })
        }
        print(String(format: "plotbench size=%d generate=%.3fs", n, tGen))
        print(String(format: "plotbench raster_full=%.3fs (log norm + viridis, %d cells, 2 threads)", tRaster, n * n))
        print(String(format: "plotbench build=%.3fs render_png=%.3fs", bestBuild, bestDraw))
        print(String(format: "swift_seconds=%.4f", best))
        print("output=\(o.out.path)")
    }
}
