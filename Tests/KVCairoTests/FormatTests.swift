import Testing
@testable import KVCairo
import KVPlot
@Test func placeholderCairo() { #expect(OutputFormat(pathExtension: "svg") == .svg) }
