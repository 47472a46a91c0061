import Testing
@testable import KVCairo

@Suite struct SVGIDTests {
    @Test func idsAndReferencesAreRenumberedInOrderOfAppearance() {
        let input = """
            <image id="image42"/><clipPath id="clip7"><use xlink:href="#image42"/></clipPath>\
            <g clip-path="url(#clip7)"><use xlink:href="#glyph3-1"/></g><symbol id="glyph3-1"/><g id="surface99"/>
            """
        let out = SVGIDs.normalize(input)
        #expect(
            out == """
                <image id="image1"/><clipPath id="clip1"><use xlink:href="#image1"/></clipPath>\
                <g clip-path="url(#clip1)"><use xlink:href="#glyph0-1"/></g><symbol id="glyph0-1"/><g id="surface1"/>
                """)
        // Colours and unrelated words are untouched.
        #expect(SVGIDs.normalize("fill=\"#ff0000\" id=\"surfaces\"") == "fill=\"#ff0000\" id=\"surfaces\"")
    }
}
