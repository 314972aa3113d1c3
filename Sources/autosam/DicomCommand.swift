import ArgumentParser
import CardiacImaging
import Foundation

/// Options shared by the commands that read a DICOM study folder.
struct SeriesRuleOptions: ParsableArguments {
    @Option(help: "JSON file with SeriesRules (keys left out take the defaults; see docs/DICOM.md).")
    var rules: String?
    @Option(help: "Minimum phases per slice of the cine (overrides the rules).") var minPhases: Int?
    @Option(help: "Minimum slice positions of the cine (overrides the rules).") var minSlices: Int?

    func load() throws -> SeriesRules {
        var r = SeriesRules.default
        if let path = rules {
            r = try JSONDecoder().decode(SeriesRules.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        }
        if let n = minPhases { r.minPhases = n }
        if let n = minSlices { r.minSlices = n }
        return r
    }
}

struct DicomPhantomCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dicom-phantom",
        abstract: "Write the synthetic cardiac studies as DICOM (one MR file per slice and phase).",
        discussion: """
            Each DIR/patientNNN/ holds the short-axis cine ('sa_cine', oblique, non-square) and a \
            3-slice axial localiser, with synthetic identifiers. DIR/truth/ holds the ED and ES \
            ground-truth label maps (patientNNN_frameFF_gt.nii.gz, on the cine's grid) and \
            patientNNN_truth.json.
            """)

    @Option(help: "Output folder (created if missing).") var out: String
    @Option(help: "Number of patients.") var patients: Int = 1
    @Option(help: "Random seed: the same seed gives the same studies.") var seed: UInt64 = 1
    @Option(help: "Number of the first patient.") var first: Int = 1
    @Flag(help: "Random file names, so the order on disk says nothing.") var scramble = false
    @Flag(help: "Leave out the localiser series.") var noLocalizer = false
    @Flag(help: "Write only the ED and ES phases.") var keyFramesOnly = false
    @Flag(help: "Write the cine as one Enhanced MR (multi-frame) file.") var enhanced = false

    func validate() throws {
        guard patients >= 1 && first >= 1 && first + patients - 1 <= 999 else { throw ValidationError("patients must stay within 1...999") }
    }

    func run() throws {
        let start = Date()
        let truthDir = out + "/truth"
        try FileManager.default.createDirectory(atPath: truthDir, withIntermediateDirectories: true)
        for n in first..<(first + patients) {
            var o = PhantomDicomOptions()
            o.scrambleFileOrder = scramble
            o.localizer = !noLocalizer
            o.enhanced = enhanced
            let truth = PhantomGenerator.truth(patient: n, seed: seed)
            if keyFramesOnly { o.frames = [truth.edFrame - 1, truth.esFrame - 1] }
            let study = try PhantomDicomWriter.writePatient(number: n, seed: seed, outDir: out, options: o)
            for t in [truth.edFrame - 1, truth.esFrame - 1] {
                let gt = PhantomGenerator.groundTruth(patient: n, seed: seed, frame: t)
                try NIfTI.write(gt, to: truthDir + "/" + ACDCPatient.frameName(truth.patient, frame: t + 1) + "_gt.nii.gz")
            }
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(try enc.encode(truth), to: "\(truthDir)/\(truth.patient)_truth.json")
            let s = study.shape
            print(String(format: "%@  %dx%d, %d slices x %d phases  %d files  ED %d ES %d",
                         truth.patient, s.nx, s.ny, s.nz, s.nt, study.fileCount, truth.edFrame, truth.esFrame))
        }
        print(String(format: "wrote %d studies to %@ in %.1f s", patients, out, Date().timeIntervalSince(start)))
    }
}

struct DicomInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dicom-info",
        abstract: "List a DICOM study's series and the chosen short-axis cine (no patient identifiers).")

    @Argument(help: "Study folder (searched recursively).") var folder: String
    @OptionGroup var rules: SeriesRuleOptions
    @Flag(help: "Also read the cine's pixels (and time it).") var read = false

    func run() throws {
        let start = Date()
        let scan = try DicomScanner.scan(folder)
        let scanned = Date()
        print("\(scan.fileCount) file(s): \(scan.series.count) image series, \(scan.nonImages.count) non-image object(s), \(scan.notDicom.count) non-DICOM file(s)")
        let r = try rules.load()
        for s in scan.series { print("  " + r.assess(s).summary) }
        let chosen = try r.chooseCine(from: scan)
        let l = chosen.layout!
        let g = l.geometry
        print("cine: \(chosen.series.label)")
        print(String(format: "  matrix %d x %d (columns x rows), %d slices, %d phases", l.columns, l.rows, l.sliceCount, l.frameCount))
        print(String(format: "  pixel spacing %.4f x %.4f mm, slice spacing %.4f mm (from positions), %@",
                     l.pixelSpacing.y, l.pixelSpacing.x, l.sliceSpacing, l.pureOrientation ?? "oblique"))
        print(String(format: "  row (%.4f, %.4f, %.4f), column (%.4f, %.4f, %.4f), normal (%.4f, %.4f, %.4f) LPS",
                     l.rowDirection.x, l.rowDirection.y, l.rowDirection.z, l.columnDirection.x, l.columnDirection.y,
                     l.columnDirection.z, l.normal.x, l.normal.y, l.normal.z))
        print("  affine (voxel -> RAS mm): \(g.affine)")
        var info = DicomStudyInfo(header: l.images[0][0])
        info.seriesDescription = chosen.series.description
        print("  \(info.logSummary)")
        if l.frameCount > 1 {
            let t = DicomStudyReader.timing(l)
            print(String(format: "  frame interval %.2f ms, first trigger %.2f ms", t.frameInterval, t.offset))
        }
        var line = String(format: "scan + choose: %.3f s", scanned.timeIntervalSince(start) + Date().timeIntervalSince(scanned))
        if read {
            let t0 = Date()
            let cine = try DicomStudyReader.read(l)
            line += String(format: "; pixels: %.3f s (%@ voxels as %@)", Date().timeIntervalSince(t0), "\(cine.volume.shape)", cine.volume.data.typeName)
            line += String(format: "; total %.3f s", Date().timeIntervalSince(start))
        }
        print(line)
    }
}

struct DicomToNIfTICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dicom-to-nifti",
        abstract: "Convert a study's short-axis cine to NIfTI (4D, or one phase with --frame).")

    @Argument(help: "Study folder (searched recursively).") var folder: String
    @Option(help: "Output file (.nii or .nii.gz).") var out: String
    @Option(help: "Write only this phase (1-based).") var frame: Int?
    @OptionGroup var rules: SeriesRuleOptions

    func run() throws {
        let start = Date()
        let cine = try DicomStudyReader.readCine(folder: folder, rules: try rules.load())
        var v = cine.volume
        if let f = frame {
            guard f >= 1 && f <= v.shape.nt else { throw ValidationError("--frame must be 1...\(v.shape.nt)") }
            let n = v.shape.voxelsPerFrame
            let data: VoxelData
            switch v.data {
            case .int16(let a): data = .int16(Array(a[((f - 1) * n)..<(f * n)]))
            case .uint16(let a): data = .uint16(Array(a[((f - 1) * n)..<(f * n)]))
            case .int32(let a): data = .int32(Array(a[((f - 1) * n)..<(f * n)]))
            default: data = .float32(v.floats(range: ((f - 1) * n)..<(f * n)))
            }
            let scaled = data.typeName != "float32" || v.data.typeName == "float32"
            v = Volume(shape: v.shape.spatial, geometry: v.geometry, data: data, slope: scaled ? v.slope : 1,
                       intercept: scaled ? v.intercept : 0, descrip: v.descrip)
        }
        try NIfTI.write(v, to: out, compression: v.shape.nt > 1 ? 1 : 0)  // fast gzip for 4D cines
        print(String(format: "%@ -> %@: %@ %@, %.1f s", cine.info.logSummary, out, "\(v.shape)", v.data.typeName, Date().timeIntervalSince(start)))
    }
}

struct DicomSegCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dicom-seg",
        abstract: "Write a DICOM SEG for one phase of a study's cine from a NIfTI label map on its grid.")

    @Argument(help: "Study folder (searched recursively).") var folder: String
    @Option(help: "Label map (NIfTI, labels 0-3 in the ACDC convention) on the cine's grid.") var labels: String
    @Option(help: "The phase it segments (1-based).") var frame: Int
    @Option(help: "Output SEG file.") var out: String
    @OptionGroup var rules: SeriesRuleOptions

    func run() throws {
        let cine = try DicomStudyReader.readCine(folder: folder, rules: try rules.load())
        let map = try NIfTI.readLabelMap(labels)
        guard frame >= 1 && frame <= cine.volume.shape.nt else { throw ValidationError("--frame must be 1...\(cine.volume.shape.nt)") }
        try DicomSegWriter.write(map, frame: frame - 1, of: cine, to: out)
        print("wrote \(out): \(CardiacSegments.all.count) segments x \(cine.volume.shape.nz) slices")
    }
}
