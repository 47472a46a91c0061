import KVPlot
import KVTrace

/// Titles, notes and modality bands drawn from a trace's metadata.
extension RenderSupport {
    /// The trace name for a title, flagged when its image tokens are pseudo-images.
    static func traceTitle(_ info: TraceInfo) -> String {
        info.name + (info.syntheticImageTokens ? " (pseudo-images)" : "")
    }

    /// True when some span is image-like and the trace flags it synthetic (or the span says pseudo).
    static func hasPseudoImages(_ info: TraceInfo) -> Bool {
        info.syntheticImageTokens || info.images.contains { $0.isPseudo }
    }

    /// A subtitle line that states the pseudo-image flag, or nil.
    static func pseudoNote(_ info: TraceInfo) -> String? {
        hasPseudoImages(info) ? "pseudo-image tokens: image spans are text tokens standing in for images (synthetic_image_tokens)" : nil
    }

    /// Modality bands of positions `0 ..< T`: text runs, one band per image (labelled "image k"),
    /// other modalities, and the generated positions `≥ P`.
    static func bands(_ info: TraceInfo, upTo T: Int? = nil) -> [ModalityBand] {
        let T = T ?? info.shape.seqLen
        let P = info.shape.prefillLen
        let imageOf = info.imageIdOfPosition
        let pseudoIDs = Set(info.images.filter { $0.isPseudo || info.syntheticImageTokens }.map(\.id))
        // Key of a position: (kind, image id).
        func key(_ j: Int) -> (BandKind, Int?) {
            if j >= P { return (.generated, nil) }
            let m = j < info.modality.count ? info.modality[j] : .text
            let img = j < imageOf.count ? imageOf[j] : nil
            switch m {
            case .text: return img != nil ? (.image, img) : (.text, nil)
            case .image: return (.image, img)
            case .video: return (.video, img)
            case .audio: return (.audio, nil)
            }
        }
        var out: [ModalityBand] = []
        var start = 0
        while start < T {
            let k = key(start)
            var end = start + 1
            while end < T, key(end) == k { end += 1 }
            let label: String?
            switch k.0 {
            case .image, .video: label = k.1.map { "image \($0)" } ?? k.0.rawValue
            case .generated: label = "gen"
            default: label = k.0.rawValue
            }
            out.append(ModalityBand(start ..< end, kind: k.0, label: label, isPseudo: k.1.map { pseudoIDs.contains($0) } ?? false))
            start = end
        }
        return out
    }
}
