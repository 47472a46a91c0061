import KVTrace

/// Which part of the prompt a position belongs to: one image (by its id), or, outside every image
/// span, its modality (text; image, video or audio tokens that no span claims).
///
/// Ordered text first, then images by id, then the other modalities: the order of merge-flow
/// matrices and figures.
public enum TokenGroup: Sendable, Hashable, Comparable, CustomStringConvertible {
    case modality(Modality)
    case image(Int)

    /// `text`, `image 0`, `video`; a non-text token outside every span is `image (no span)`.
    public var description: String {
        switch self {
        case .modality(.text): "text"
        case let .modality(m): "\(m) (no span)"
        case let .image(k): "image \(k)"
        }
    }

    private var rank: (Int, Int) {
        switch self {
        case .modality(.text): (0, 0)
        case let .image(k): (1, k)
        case let .modality(m): (2, Int(m.rawValue))
        }
    }

    public static func < (a: TokenGroup, b: TokenGroup) -> Bool { a.rank < b.rank }

    /// The group of each position `0 ..< P`: its image when an image span holds it, else its
    /// modality (positions past the trace's modality array are text).
    public static func of(_ info: TraceInfo, count P: Int) -> [TokenGroup] {
        let ids = info.imageIdOfPosition
        return (0 ..< P).map { p in
            if p < ids.count, let k = ids[p] { return .image(k) }
            return .modality(p < info.modality.count ? info.modality[p] : .text)
        }
    }
}

/// Where an evicted token may merge (`--merge-scope`, docs/policies.md#merge-scope).
///
/// The nearest-kept-key search of every merge strategy runs over the kept tokens of the evicted
/// token's own group only; a token whose group has no kept token (in that KV head) is dropped, as
/// under plain eviction. `all` is LOOK-M's official behaviour and the default in both fidelities.
public enum MergeScope: String, Sendable, Hashable, Codable, CaseIterable {
    /// Any kept token (the official code).
    case all
    /// Kept tokens of the same modality (text into text, image tokens into any image's tokens).
    case modality
    /// Kept tokens of the same image (text into text; other tokens outside spans by modality).
    case image

    /// The group key of each position `0 ..< P` under this scope, or nil for `all` (one group).
    public func groups(_ info: TraceInfo, count P: Int) -> [TokenGroup]? {
        switch self {
        case .all: return nil
        case .modality: return (0 ..< P).map { .modality($0 < info.modality.count ? info.modality[$0] : .text) }
        case .image: return TokenGroup.of(info, count: P)
        }
    }
}
