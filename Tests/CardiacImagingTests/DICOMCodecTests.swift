import Foundation
import Testing

@testable import CardiacImaging

/// Compressed transfer syntaxes decode to the same stored values: each synthetic series is
/// compressed with DCMTK's own tools (JPEG lossless, JPEG-LS lossless, RLE) and read back.
struct DICOMCodecTests {
    static let tools = ["dcmcjpeg", "dcmcjpls", "dcmcrle"]

    @Test(.enabled(if: tools.allSatisfy { findTool($0) != nil }, "DCMTK's dcmcjpeg/dcmcjpls/dcmcrle (Debian: dcmtk) are needed"),
          arguments: tools)
    func compressedSeriesReadsBackExactly(_ tool: String) throws {
        let dir = try makeTemporaryFolder("autosam-codec")
        defer { removeFolder(dir) }
        let s = SyntheticSeries()
        try s.write(to: dir + "/plain")
        try FileManager.default.createDirectory(atPath: dir + "/packed", withIntermediateDirectories: true)
        let exe = try #require(findTool(tool))
        for name in try FileManager.default.contentsOfDirectory(atPath: dir + "/plain") {
            let r = runTool(exe, [dir + "/plain/" + name, dir + "/packed/" + name])
            #expect(r.status == 0, "\(tool): \(r.output)")
        }
        let header = try DicomFile.readHeader(dir + "/packed/sa_cine_0_0.dcm")
        #expect(header.transferSyntaxUID != "1.2.840.10008.1.2.1", "\(tool) must have compressed the file")
        let plain = try DicomStudyReader.readCine(folder: dir + "/plain", rules: SyntheticSeries.rules)
        let packed = try DicomStudyReader.readCine(folder: dir + "/packed", rules: SyntheticSeries.rules)
        #expect(packed.volume.data == plain.volume.data)
        #expect(packed.volume.geometry == plain.volume.geometry)
    }
}
