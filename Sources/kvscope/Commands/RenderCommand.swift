import ArgumentParser

/// `kvscope render <figure>`: every figure, one subcommand each.
struct RenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Draw a figure (PNG, SVG or PDF, chosen by the -o/--output extension).",
        discussion: """
            Every figure is a pure function of its inputs: the same inputs give the same bytes (PNG and SVG; \
            PDF carries a pinned creation date). Files are written to a temporary name beside the target and \
            renamed into place. Without -o/--output the figure goes to Output/<figure>-<trace>….png.

            The figures that replay a policy (retention, patches, modality, merges) take the budget forms of \
            `kvscope simulate`: --budget b, --tokens N, or --hh-ratio x with --recent-ratio y (and \
            --recent-share s with the first two); without one they use --budget 0.2.

            Figures of traces whose image tokens are pseudo-images (text tokens standing in for an image, \
            `synthetic_image_tokens`) say so in the title and hatch those spans.
            """,
        subcommands: [
            HeatmapCommand.self, RetentionCommand.self, PatchesCommand.self, CurvesCommand.self,
            ModalityCommand.self, MergesCommand.self, MergeFlowCommand.self, RatiosCommand.self, DecodingCommand.self,
        ]
    )
}
