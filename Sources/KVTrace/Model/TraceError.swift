/// A problem with a trace, reported as one line naming the file (and the layer and tensor where
/// they apply) and what is wrong.
public struct TraceError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var layer: Int?
    public var tensor: String?
    public var message: String

    public init(file: String, layer: Int? = nil, tensor: String? = nil, _ message: String) {
        self.file = file
        self.layer = layer
        self.tensor = tensor
        self.message = message
    }

    public var description: String {
        var parts = [file]
        if let layer { parts.append("layer \(layer)") }
        if let tensor { parts.append("tensor '\(tensor)'") }
        // Names and values from a file may hold newlines or escapes: the line stays one line.
        return (parts.joined(separator: ", ") + ": " + message).escapedForMessage
    }

    /// The same error attributed to a layer and tensor if it has none yet.
    public func within(layer: Int? = nil, tensor: String? = nil) -> TraceError {
        var e = self
        if e.layer == nil { e.layer = layer }
        if e.tensor == nil { e.tensor = tensor }
        return e
    }
}

/// A non-fatal finding: printed once per kind and file, the command goes on.
public struct TraceWarning: Sendable, Hashable, Codable, CustomStringConvertible {
    public var file: String
    public var kind: String
    public var message: String
    public init(file: String, kind: String, _ message: String) {
        self.file = file
        self.kind = kind
        self.message = message
    }
    public var description: String { "\(file): warning: \(message)" }
}
