import Foundation
import Testing

@testable import CardiacImaging

/// Our NIfTI code against an independent implementation (nibabel), both directions.
@Suite(.enabled(if: PythonTool.shouldRun("nibabel"), "python3 with nibabel is needed"))
struct NibabelCrossCheckTests {
    func matrix(_ any: Any?) -> Matrix4? {
        guard let rows = any as? [[Double]], rows.count == 4 else { return nil }
        return Matrix4(rowMajor: rows.flatMap { $0 })
    }

    func rawSum(_ v: Volume) -> (sum: Double, sumsq: Double, first: [Double]) {
        let values: [Double]
        switch v.data {
        case .uint8(let a): values = a.map(Double.init)
        case .int8(let a): values = a.map(Double.init)
        case .int16(let a): values = a.map(Double.init)
        case .uint16(let a): values = a.map(Double.init)
        case .int32(let a): values = a.map(Double.init)
        case .float32(let a): values = a.map(Double.init)
        case .float64(let a): values = a
        }
        return (values.reduce(0, +), values.reduce(0) { $0 + $1 * $1 }, Array(values.prefix(16)))
    }

    /// Element-wise equality up to JSON's decimal round trip (Foundation's parser is not
    /// always correctly rounded in the last bit).
    func close(_ a: [Double]?, _ b: [Double]) -> Bool {
        guard let a, a.count == b.count else { return false }
        return zip(a, b).allSatisfy { abs($0 - $1) <= 1e-12 * max(1, abs($1)) }
    }

    @Test func nibabelReadsWhatWeWrite() throws {
        let dir = try makeTemporaryFolder()
        defer { removeFolder(dir) }
        let cases: [(String, Volume)] = [
            ("cine.nii.gz", Volume(shape: GridShape(9, 7, 5, 4), geometry: obliqueGeometry(), data: sampleData("int16", count: 1260),
                                   timing: FrameTiming(frameInterval: 40))),
            ("float_v2.nii", Volume(shape: GridShape(6, 8, 3), geometry: obliqueGeometry(), data: sampleData("float32", count: 144), niftiVersion: 2)),
            ("scaled.nii.gz", Volume(shape: GridShape(5, 5, 4), geometry: obliqueGeometry(), data: sampleData("uint16", count: 100), slope: 0.5, intercept: -7)),
            ("labels.nii.gz", LabelMap(shape: GridShape(6, 5, 4), geometry: obliqueGeometry(), labels: (0..<120).map { UInt8($0 % 4) }).volume),
            ("f64.nii.gz", Volume(shape: GridShape(4, 3, 5), geometry: obliqueGeometry(), data: sampleData("float64", count: 60))),
        ]
        for (name, v) in cases { try NIfTI.write(v, to: "\(dir)/\(name)") }
        let out = try PythonTool.json("nibabel_check.py", ["describe"] + cases.map { "\(dir)/\($0.0)" })
        let described = try #require(out as? [[String: Any]])
        #expect(described.count == cases.count)
        for (d, (name, v)) in zip(described, cases) {
            let shape = d["shape"] as? [Int] ?? []
            let expected = v.shape.nt > 1 ? [v.shape.nx, v.shape.ny, v.shape.nz, v.shape.nt] : [v.shape.nx, v.shape.ny, v.shape.nz]
            #expect(shape == expected, "\(name) shape")
            #expect(d["dtype"] as? String == v.data.typeName, "\(name) dtype")
            #expect(d["version"] as? Int == v.niftiVersion, "\(name) version")
            let affine = try #require(matrix(d["affine"]))
            #expect(affine.maxAbsDifference(v.geometry.affine) < 1e-5, "\(name) affine \(affine) vs \(v.geometry.affine)")
            let qform = try #require(matrix(d["qform"]))
            #expect(qform.maxAbsDifference(v.geometry.nifti.qformAffine) < 1e-4, "\(name) qform")
            #expect(d["sform_code"] as? Int == 1 && d["qform_code"] as? Int == 1, "\(name) codes")
            #expect(d["slope"] as? Double == v.slope && d["inter"] as? Double == v.intercept, "\(name) scaling")
            let ours = rawSum(v)
            #expect(abs((d["sum"] as? Double ?? .nan) - ours.sum) <= 1e-9 * max(1, abs(ours.sum)) + 1e-6, "\(name) sum")
            #expect(abs((d["sumsq"] as? Double ?? .nan) - ours.sumsq) <= 1e-9 * ours.sumsq + 1e-6, "\(name) sumsq")
            #expect(close(d["first"] as? [Double], ours.first), "\(name) first voxels")
            if v.shape.nt > 1 { #expect((d["zooms"] as? [Double])?[3] == 40, "\(name) frame interval") }
        }
    }

    @Test func weReadWhatNibabelWrites() throws {
        let dir = try makeTemporaryFolder()
        defer { removeFolder(dir) }
        let out = try PythonTool.json("nibabel_check.py", ["write", dir])
        let written = try #require(out as? [[String: Any]])
        #expect(written.count == 5)
        for d in written {
            let path = try #require(d["path"] as? String)
            let v = try NIfTI.read(path)
            let shape = d["shape"] as? [Int] ?? []
            #expect([v.shape.nx, v.shape.ny, v.shape.nz, v.shape.nt].prefix(shape.count).elementsEqual(shape), "\(path) shape")
            #expect(v.data.typeName == d["dtype"] as? String, "\(path) dtype")
            #expect(v.niftiVersion == d["version"] as? Int, "\(path) version")
            // nibabel's affine follows the same precedence (sform, then qform).
            let affine = try #require(matrix(d["affine"]))
            #expect(v.geometry.affine.maxAbsDifference(affine) < 1e-6, "\(path) affine \(v.geometry.affine) vs \(affine)")
            if (d["qform_code"] as? Int ?? 0) > 0 {
                let q = try #require(matrix(d["qform"]))
                #expect(v.geometry.nifti.qformAffine.maxAbsDifference(q) < 1e-5, "\(path) qform")
            }
            #expect(Int(v.geometry.nifti.sformCode) == d["sform_code"] as? Int, "\(path) sform code")
            #expect(Int(v.geometry.nifti.qformCode) == d["qform_code"] as? Int, "\(path) qform code")
            let slope = d["slope"] as? Double ?? .nan, inter = d["inter"] as? Double ?? .nan
            #expect((v.slope == slope || (v.slope == 0 && slope == 1)) && v.intercept == inter, "\(path) scaling \(v.slope) \(v.intercept)")
            let ours = rawSum(v)
            #expect(abs((d["sum"] as? Double ?? .nan) - ours.sum) <= 1e-9 * max(1, abs(ours.sum)) + 1e-6, "\(path) sum")
            #expect(close(d["first"] as? [Double], ours.first), "\(path) first voxels")
        }
    }
}
