import Foundation
import Testing

@testable import CardiacImaging

/// An oblique, anisotropic grid used across the NIfTI tests.
func obliqueGeometry() -> VolumeGeometry {
    let a = 0.4, b = -0.3
    let d0 = SIMD3(cos(a), sin(a), 0.0)
    let d1 = SIMD3(-sin(a) * cos(b), cos(a) * cos(b), sin(b))
    let d2 = d0.cross(d1)
    return VolumeGeometry(spacing: SIMD3(1.37, 1.37, 8.5), origin: SIMD3(-101.5, 12.25, 40), direction: [d0, d1, d2])
}

func sampleData(_ type: String, count: Int) -> VoxelData {
    var r = SeededRandom(seed: 99, streams: UInt64(count))
    switch type {
    case "uint8": return .uint8((0..<count).map { _ in UInt8(truncatingIfNeeded: r.next()) })
    case "int8": return .int8((0..<count).map { _ in Int8(truncatingIfNeeded: r.next()) })
    case "int16": return .int16((0..<count).map { _ in Int16(truncatingIfNeeded: r.next()) })
    case "uint16": return .uint16((0..<count).map { _ in UInt16(truncatingIfNeeded: r.next()) })
    case "int32": return .int32((0..<count).map { _ in Int32(truncatingIfNeeded: r.next()) })
    case "float32": return .float32((0..<count).map { _ in Float(r.gaussian() * 1000) })
    default: return .float64((0..<count).map { _ in r.gaussian() * 1e6 })
    }
}

@Suite struct NIfTIRoundTripTests {
    static let types = ["uint8", "int8", "int16", "uint16", "int32", "float32", "float64"]

    @Test(arguments: types, [".nii", ".nii.gz"])
    func roundTripIsBitForBit(type: String, ext: String) throws {
        let dir = try makeTemporaryFolder()
        defer { removeFolder(dir) }
        for (version, nt) in [(1, 1), (2, 3)] {
            let shape = GridShape(7, 5, 3, nt)
            let v = Volume(
                shape: shape, geometry: obliqueGeometry(), data: sampleData(type, count: shape.count),
                slope: type == "int16" ? 0.25 : 1, intercept: type == "int16" ? -3 : 0,
                timing: nt > 1 ? FrameTiming(frameInterval: 33.5) : nil, niftiVersion: version)
            let path = "\(dir)/v\(version)\(ext)"
            try NIfTI.write(v, to: path)
            let back = try NIfTI.read(path)
            #expect(back.data == v.data)
            #expect(back.shape == shape)
            #expect(back.niftiVersion == version)
            #expect(back.slope == v.slope && back.intercept == v.intercept)
            #expect(back.timing?.frameInterval == v.timing?.frameInterval)
            // Writing what was read reproduces the spatial header exactly.
            let again = "\(dir)/again\(ext)"
            try NIfTI.write(back, to: again)
            let back2 = try NIfTI.read(again)
            #expect(back2.geometry.nifti == back.geometry.nifti)
            #expect(back2.data == v.data)
            #expect(back.geometry.affine.maxAbsDifference(v.geometry.affine) < 1e-4)
        }
    }

    @Test func labelMapKeepsTheSourceQformAndSform() throws {
        let dir = try makeTemporaryFolder()
        defer { removeFolder(dir) }
        // A source whose qform and sform differ (sform code 2), as scanners' converters write.
        var g = obliqueGeometry()
        g.nifti.sformCode = 2
        g.nifti.sform[0, 3] += 5
        g = VolumeGeometry(nifti: g.nifti)
        let image = Volume(shape: GridShape(6, 4, 5), geometry: g, data: sampleData("int16", count: 120))
        try NIfTI.write(image, to: "\(dir)/img.nii.gz")
        let read = try NIfTI.read3D("\(dir)/img.nii.gz")
        var labels = LabelMap(emptyLike: read)
        labels.labels[7] = 3
        try NIfTI.write(labels, to: "\(dir)/lab.nii.gz")
        let back = try NIfTI.readLabelMap("\(dir)/lab.nii.gz")
        #expect(back.geometry.nifti == read.geometry.nifti)
        #expect(back.geometry.affine == read.geometry.affine)
        #expect(back.labels == labels.labels)
        let raw = try NIfTI.read("\(dir)/lab.nii.gz")
        #expect(raw.data.typeName == "uint8")
        try back.validate(against: read)
    }

    @Test func affinePrecedenceSformThenQformThenPixdim() {
        var h = obliqueGeometry().nifti
        h.sform[0, 3] += 10
        #expect(h.bestAffine == h.sform)
        h.sformCode = 0
        #expect(h.bestAffine == h.qformAffine)
        h.qformCode = 0
        #expect(h.bestAffine[0, 0] == h.pixdim[0] && h.bestAffine[0, 3] == 0 && h.bestAffine[2, 2] == h.pixdim[2])
    }

    @Test func slicingAndStackingGiveTheVolumeBack() throws {
        let shape = GridShape(5, 4, 3, 2)
        let v = Volume(shape: shape, geometry: obliqueGeometry(), floats: (0..<shape.count).map(Float.init))
        let s = try v.slice(2, frame: 1)
        #expect(s.width == 5 && s.height == 4)
        #expect(s[1, 2] == Float(60 + 2 * 20 + 2 * 5 + 1))
        let frame = try v.frame(1)
        #expect(frame.floats() == Array(v.floats()[60..<120]))
        let map = LabelMap(shape: shape.spatial, geometry: v.geometry, labels: (0..<60).map { UInt8($0 % 4) })
        let rebuilt = try LabelMap(slices: map.slices(), geometry: map.geometry)
        #expect(rebuilt == map)
        #expect(throws: ImagingError.self) { try v.slice(3) }
    }
}

@Suite struct NIfTIBadInputTests {
    func reason(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "no error"
        } catch let e as ImagingError {
            return e.description
        } catch {
            return "\(error)"
        }
    }

    @Test func truncatedCompressedFileIsRefused() throws {
        let dir = try makeTemporaryFolder()
        defer { removeFolder(dir) }
        let v = Volume(shape: GridShape(40, 40, 10), geometry: obliqueGeometry(), data: sampleData("int16", count: 16000))
        try NIfTI.write(v, to: "\(dir)/a.nii.gz")
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/a.nii.gz"))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: "\(dir)/cut.nii.gz"))
        let msg = reason { _ = try NIfTI.read("\(dir)/cut.nii.gz") }
        #expect(msg.contains("truncated or corrupt"), "\(msg)")
    }

    @Test func truncatedPlainFileIsRefused() throws {
        let dir = try makeTemporaryFolder()
        defer { removeFolder(dir) }
        let v = Volume(shape: GridShape(40, 40, 10), geometry: obliqueGeometry(), data: sampleData("int16", count: 16000))
        try NIfTI.write(v, to: "\(dir)/a.nii")
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/a.nii"))
        try data.prefix(5000).write(to: URL(fileURLWithPath: "\(dir)/cut.nii"))
        let msg = reason { _ = try NIfTI.read("\(dir)/cut.nii") }
        #expect(msg.contains("truncated file"), "\(msg)")
    }

    @Test func absurdDimensionsAreRefusedBeforeAllocating() throws {
        let dir = try makeTemporaryFolder()
        defer { removeFolder(dir) }
        let v = Volume(shape: GridShape(4, 4, 4), geometry: obliqueGeometry(), data: sampleData("float32", count: 64))
        try NIfTI.write(v, to: "\(dir)/a.nii")
        var data = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/a.nii"))
        // NIfTI-1 dim[1...3] sit at byte 42 as little-endian int16: make it 30000^3 voxels.
        for off in [42, 44, 46] { data[off] = 0x30; data[off + 1] = 0x75 }
        try data.write(to: URL(fileURLWithPath: "\(dir)/huge.nii"))
        let msg = reason { _ = try NIfTI.read("\(dir)/huge.nii") }
        #expect(msg.contains("absurd dimensions"), "\(msg)")
        // A negative dimension as well.
        data[42] = 0xF6; data[43] = 0xFF
        try data.write(to: URL(fileURLWithPath: "\(dir)/neg.nii"))
        let msg2 = reason { _ = try NIfTI.read("\(dir)/neg.nii") }
        #expect(msg2.contains("cannot read"), "\(msg2)")
    }

    /// NaN or infinite voxels are damaged data: refused, with the voxel named. A non-finite
    /// scl_slope means unscaled (as nibabel reads it), not a volume of NaNs.
    @Test func nonFiniteVoxelsAreRefusedAndANaNSlopeMeansUnscaled() throws {
        let dir = try makeTemporaryFolder()
        defer { removeFolder(dir) }
        for bad in [Float.nan, .infinity, -.infinity] {
            var values = (0..<(5 * 4 * 3)).map { Float($0) }
            values[2 * 20 + 1 * 5 + 3] = bad  // x 3, y 1, z 2
            let v = Volume(shape: GridShape(5, 4, 3), geometry: obliqueGeometry(), data: .float32(values))
            try NIfTI.write(v, to: "\(dir)/bad.nii.gz")
            let msg = reason { _ = try NIfTI.read("\(dir)/bad.nii.gz") }
            #expect(msg.contains("voxel (3, 1, 2) is \(bad)") && msg.contains("NaN or infinite"), "\(msg)")
        }
        let v = Volume(shape: GridShape(5, 4, 3), geometry: obliqueGeometry(), data: sampleData("int16", count: 60), slope: .nan, intercept: 7)
        try NIfTI.write(v, to: "\(dir)/nanslope.nii")
        let back = try NIfTI.read("\(dir)/nanslope.nii")
        #expect(back.floats() == v.data.floats())
    }

    @Test func twoDimensionalFileWhereThreeAreNeeded() throws {
        let dir = try makeTemporaryFolder()
        defer { removeFolder(dir) }
        let v = Volume(shape: GridShape(16, 12, 1), geometry: obliqueGeometry(), data: sampleData("int16", count: 192))
        try NIfTI.write(v, to: "\(dir)/flat.nii.gz")
        let msg = reason { _ = try NIfTI.read3D("\(dir)/flat.nii.gz") }
        #expect(msg.contains("3D is needed"), "\(msg)")
    }

    @Test func labelMapOnAnotherGrid() throws {
        let dir = try makeTemporaryFolder()
        defer { removeFolder(dir) }
        let g = obliqueGeometry()
        let image = Volume(shape: GridShape(8, 6, 4), geometry: g, data: sampleData("int16", count: 192))
        try NIfTI.write(image, to: "\(dir)/img.nii.gz")
        // Same sizes, shifted origin.
        var moved = g.affine
        moved[1, 3] += 2
        try NIfTI.write(LabelMap(shape: GridShape(8, 6, 4), geometry: VolumeGeometry(affine: moved), labels: .init(repeating: 1, count: 192)), to: "\(dir)/shifted.nii.gz")
        let m1 = reason { _ = try NIfTI.readPair(image: "\(dir)/img.nii.gz", labels: "\(dir)/shifted.nii.gz") }
        #expect(m1.contains("grid mismatch") && m1.contains("affine"), "\(m1)")
        // Other sizes.
        try NIfTI.write(LabelMap(shape: GridShape(8, 6, 5), geometry: g, labels: .init(repeating: 1, count: 240)), to: "\(dir)/bigger.nii.gz")
        let m2 = reason { _ = try NIfTI.readPair(image: "\(dir)/img.nii.gz", labels: "\(dir)/bigger.nii.gz") }
        #expect(m2.contains("grid mismatch") && m2.contains("8x6x5"), "\(m2)")
    }

    @Test func labelValuesOutsideTheClasses() throws {
        let dir = try makeTemporaryFolder()
        defer { removeFolder(dir) }
        var labels = [UInt8](repeating: 0, count: 64)
        labels[3] = 7
        try NIfTI.write(LabelMap(shape: GridShape(4, 4, 4), geometry: obliqueGeometry(), labels: labels), to: "\(dir)/l.nii.gz")
        let msg = reason { _ = try NIfTI.readLabelMap("\(dir)/l.nii.gz") }
        #expect(msg.contains("value 7"), "\(msg)")
    }

    @Test func notNIfTIAtAll() throws {
        let dir = try makeTemporaryFolder()
        defer { removeFolder(dir) }
        try Data((0..<2000).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: "\(dir)/junk.nii"))
        let msg = reason { _ = try NIfTI.read("\(dir)/junk.nii") }
        #expect(msg.contains("not a readable NIfTI"), "\(msg)")
        let missing = reason { _ = try NIfTI.read("\(dir)/nothing.nii.gz") }
        #expect(missing.contains("file not found"), "\(missing)")
    }

    @Test func failedWriteLeavesNoPartialFile() throws {
        let dir = try makeTemporaryFolder()
        defer { removeFolder(dir) }
        let v = Volume(shape: GridShape(4, 4, 4), geometry: obliqueGeometry(), data: sampleData("int16", count: 64))
        let msg = reason { try NIfTI.write(v, to: "\(dir)/no/such/folder/a.nii.gz") }
        #expect(msg.contains("cannot write"), "\(msg)")
        let bad = reason { try NIfTI.write(v, to: "\(dir)/a.txt") }
        #expect(bad.contains("cannot write"), "\(bad)")
        let left = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(left.isEmpty, "left behind: \(left)")
    }
}
