import KVPlot
import KVPolicies

/// Figures and the report style a policy from its declaration, never from a hash of its label.
extension PolicyStyle {
    /// The style of a configured policy, from its declaration: the base policy's colour, the
    /// merge strategy's dash and marker, reference lines without markers.
    public static func of(_ c: PolicyConfiguration) -> PolicyStyle {
        of(base: c.base, merge: c.mergeStrategy?.rawValue ?? "none")
    }

    /// The style of a result row's `base` and `merge` columns.
    public static func of(base: String, merge: String) -> PolicyStyle {
        guard let d = PolicyRegistry.declaration(base) else { return .of(base) }
        let m: String? = merge == "none" ? nil : merge
        return .declared(color: d.color, merge: m, reference: d.traits.contains(.reference))
    }
}
