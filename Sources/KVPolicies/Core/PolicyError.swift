/// A policy cannot run: a missing input (named), an unusable budget, or a bad parameter.
public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        case missingInput, budget, parameter, unknownPolicy
    }
    public var kind: Kind
    public var policy: String
    public var layer: Int?
    /// The trace tensor that is missing, for `.missingInput`.
    public var tensor: String?
    public var message: String

    public init(_ kind: Kind, policy: String, layer: Int? = nil, tensor: String? = nil, _ message: String) {
        self.kind = kind
        self.policy = policy
        self.layer = layer
        self.tensor = tensor
        self.message = message
    }

    static func missing(_ tensor: String, policy: String, layer: Int?, _ why: String) -> PolicyError {
        PolicyError(
            .missingInput, policy: policy, layer: layer, tensor: tensor,
            "needs tensor '\(tensor)' (\(why)), which the trace does not carry")
    }

    public var description: String {
        var head = "policy \(policy)"
        if let layer { head += ", layer \(layer)" }
        return head + ": " + message
    }
}
