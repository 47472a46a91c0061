import CKernels
import Foundation
import KVTrace

/// Everything a policy may read for one layer: the trace's metadata, the layer's tensors, the
/// compression point `P`, the resolved budget and the run options.
///
/// Accessors that need a tensor the trace lacks throw a `PolicyError` naming that tensor.
public struct LayerContext: Sendable {
    public let info: TraceInfo
    public let layer: Int
    public let tensors: LayerTensors
    /// `P`: positions `0 ..< P` are candidates.
    public let compressionPoint: Int
    public let budget: Budget
    public let options: PolicyOptions
    /// The whole trace, for the policies that read another layer (FastV).
    public let trace: (any TraceSource)?
    /// The policy id used in error messages.
    public var policyID: String = ""
    /// Work shared by the policies and budgets run on this layer (nil: nothing is shared).
    public let cache: WorkCache?

    public init(
        info: TraceInfo, tensors: LayerTensors, budget: BudgetSpec, options: PolicyOptions = .init(),
        compressionPoint: Int? = nil, trace: (any TraceSource)? = nil, cache: WorkCache? = nil
    ) {
        self.cache = cache
        self.info = info
        self.layer = tensors.layer
        self.tensors = tensors
        let P = compressionPoint ?? info.shape.prefillLen
        self.compressionPoint = P
        self.budget = budget.resolve(P)
        self.options = options
        self.trace = trace
    }

    /// Reads layer `layer` of `trace` and builds its context.
    public init(
        trace: any TraceSource, layer: Int, budget: BudgetSpec, options: PolicyOptions = .init(),
        compressionPoint: Int? = nil, cache: WorkCache? = nil
    ) throws {
        self.init(
            info: trace.info, tensors: try trace.layer(layer), budget: budget, options: options,
            compressionPoint: compressionPoint, trace: trace, cache: cache)
    }

    /// The same context for the named policy (error messages name it).
    public func named(_ id: String) -> LayerContext {
        var c = self
        c.policyID = id
        return c
    }

    /// The same context with another budget.
    public func with(budget: BudgetSpec) -> LayerContext {
        LayerContext(
            info: info, tensors: tensors, budget: budget, options: options, compressionPoint: compressionPoint, trace: trace,
            cache: cache
        ).named(policyID)
    }

    public var queryHeads: Int { info.shape.queryHeads }
    public var kvHeads: Int { info.shape.kvHeads }
    public var headDim: Int { info.shape.headDim }
    /// The GQA map `g(h)`.
    public var kvHeadOfQueryHead: [Int] { info.shape.kvHeadOfQueryHead }

    /// True at each position `< P` whose modality is text.
    public var isText: [Bool] {
        (0 ..< compressionPoint).map { $0 < info.modality.count ? info.modality[$0] == .text : true }
    }
    /// True when some position `< P` is not text.
    public var hasNonText: Bool { isText.contains(false) }

    func missing(_ tensor: String, _ why: String) -> PolicyError {
        .missing(tensor, policy: policyID, layer: layer, why)
    }
}
