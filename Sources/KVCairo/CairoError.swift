import CCairo

/// A Cairo failure: the operation that failed and Cairo's own description of the status.
public struct CairoError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What KVCairo was doing ("create image surface", "write PNG", …).
    public var operation: String
    /// The raw `cairo_status_t` value.
    public var status: UInt32
    /// `cairo_status_to_string(status)`, or a KVCairo message for non-Cairo failures.
    public var message: String

    public init(operation: String, status: UInt32, message: String) {
        self.operation = operation; self.status = status; self.message = message
    }

    init(operation: String, status: cairo_status_t) {
        self.operation = operation
        self.status = UInt32(status.rawValue)
        self.message = String(cString: cairo_status_to_string(status))
    }

    public var description: String { "cairo: \(operation) failed: \(message)" }

    /// Throws when `status` is not success.
    static func check(_ status: cairo_status_t, _ operation: @autoclosure () -> String) throws {
        if status != CAIRO_STATUS_SUCCESS { throw CairoError(operation: operation(), status: status) }
    }
}
