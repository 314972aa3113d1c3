import CardiacImaging
import Foundation

/// Why a study cannot be processed: shown in `failed/<study>/reason.txt`, so it is written for
/// the person who will read it.
public struct StudyError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The kinds of input the inbox takes.
public enum StudyKind: String, Sendable, Codable {
    /// A single `.nii` / `.nii.gz` at the inbox top level (a 4D cine or one 3D frame).
    case niftiFile = "nifti"
    /// A folder holding one NIfTI cine, with an optional `Info.cfg` naming ED and ES.
    case niftiFolder = "nifti-folder"
    /// An ACDC patient folder (`Info.cfg`, `<id>_4d.nii.gz` and/or `<id>_frameNN.nii.gz`).
    case acdc
    /// A folder of DICOM files (one study, any layout); the short-axis cine is chosen by the series rules.
    case dicom
}

/// A study read into memory: the cine (or single frame), what is known of ED/ES and the body
/// measures, and for DICOM the source series (the SEG references it).
public struct StudyInput {
    public var kind: StudyKind
    /// 4D cine, or a 3D volume (one frame).
    public var image: Volume
    /// Separate ED/ES frame volumes when there is no 4D cine (ACDC folders without `_4d`).
    public var keyFrames: [Int: Volume] = [:]
    /// 0-based ED and ES frames when the input names them (Info.cfg).
    public var edES: (ed: Int, es: Int)?
    public var heightCm: Double?
    public var weightKg: Double?
    public var dicom: DicomCine?
    /// The files that make the study (for provenance), relative to the study path.
    public var files: [String] = []

    /// Number of frames the study has.
    public var frameCount: Int { keyFrames.isEmpty ? image.shape.nt : (keyFrames.keys.max() ?? 0) + 1 }

    /// Frame t (0-based) as a 3D volume on the image grid.
    public func frame(_ t: Int) throws -> Volume {
        if let v = keyFrames[t] { return v }
        if image.shape.nt == 1 && t == 0 { return image }
        return try image.frame(t)
    }

    public static func isNIfTIName(_ name: String) -> Bool { name.hasSuffix(".nii") || name.hasSuffix(".nii.gz") }

    /// Decides the kind of the item at `path` without reading voxels.
    public static func classify(_ path: String) throws -> StudyKind {
        try FileTree.refuseUnsafe(path)
        let name = (path as NSString).lastPathComponent
        if EntryType.of(path) != .folder {
            guard isNIfTIName(name) else {
                throw StudyError("'\(name)' is a single file but not NIfTI (.nii or .nii.gz); a study is a NIfTI file or a folder (DICOM, ACDC patient, or NIfTI + Info.cfg)")
            }
            return .niftiFile
        }
        let files = try listFiles(path)
        guard !files.isEmpty else { throw StudyError("the folder '\(name)' holds no files") }
        let niftis = files.filter { isNIfTIName(($0 as NSString).lastPathComponent) }
        if files.contains("Info.cfg"), ACDCLike.prefix(files) != nil { return .acdc }
        if !niftis.isEmpty { return .niftiFolder }
        return .dicom
    }

    /// Every plain file below `path` (relative, sorted; links are not followed), hidden names and
    /// the marker skipped by the caller.
    static func listFiles(_ path: String) throws -> [String] {
        guard EntryType.of(path) == .folder else { throw StudyError("cannot list '\((path as NSString).lastPathComponent)': not a folder") }
        return FileTree.walk(path).filter { $0.type == .file }.map(\.path)
    }

    /// Reads a study. Bad input throws an error naming the problem.
    public static func read(_ path: String, rules: SeriesRules, marker: String) throws -> StudyInput {
        let kind = try classify(path)
        let name = (path as NSString).lastPathComponent
        switch kind {
        case .niftiFile:
            let v = try NIfTI.read(path)
            try checkImage(v, name: name)
            return StudyInput(kind: kind, image: v, files: [name])
        case .niftiFolder:
            let files = try listFiles(path).filter { $0 != marker }
            let images = files.filter { isNIfTIName(($0 as NSString).lastPathComponent) && !Self.isLabelName($0) }
            guard images.count == 1 else {
                throw StudyError("the folder '\(name)' holds \(images.count) NIfTI images (\(images.prefix(5).joined(separator: ", "))); a NIfTI study folder holds exactly one cine (plus an optional Info.cfg)")
            }
            let v = try NIfTI.read(path + "/" + images[0])
            try checkImage(v, name: images[0])
            var s = StudyInput(kind: kind, image: v, files: files)
            if files.contains("Info.cfg") {
                let info = try readInfo(path + "/Info.cfg", study: name)
                guard v.shape.nt > 1 else { throw StudyError("Info.cfg names ED and ES but \(images[0]) is a single 3D frame") }
                guard info.ed <= v.shape.nt, info.es <= v.shape.nt else {
                    throw StudyError("Info.cfg names ED \(info.ed) / ES \(info.es) but the cine has \(v.shape.nt) frames")
                }
                s.edES = (info.ed - 1, info.es - 1)
                s.heightCm = info.heightCm
                s.weightKg = info.weightKg
            }
            return s
        case .acdc:
            // The ACDC layout, named by its files (the folder may have been renamed).
            let files = try listFiles(path).filter { $0 != marker }
            guard let id = ACDCLike.prefix(files) else { throw StudyError("not an ACDC patient folder") }
            let info = try readInfo(path + "/Info.cfg", study: name)
            func existing(_ stem: String) -> String? {
                [".nii.gz", ".nii"].map { path + "/" + stem + $0 }.first { FileManager.default.fileExists(atPath: $0) }
            }
            var s: StudyInput
            if let cinePath = existing(id + "_4d") {
                let v = try NIfTI.read(cinePath)
                try checkImage(v, name: (cinePath as NSString).lastPathComponent)
                guard v.shape.nt > 1 else { throw StudyError("\((cinePath as NSString).lastPathComponent) is not a cine (one frame)") }
                guard info.ed <= v.shape.nt, info.es <= v.shape.nt else {
                    throw StudyError("Info.cfg names ED \(info.ed) / ES \(info.es) but the cine has \(v.shape.nt) frames")
                }
                s = StudyInput(kind: .acdc, image: v, files: files)
            } else {
                var frames: [Int: Volume] = [:]
                for f in Set([info.ed, info.es]) {
                    let stem = ACDCPatient.frameName(id, frame: f)
                    guard let fp = existing(stem) else {
                        throw StudyError("the ACDC folder has neither a 4D cine (\(id)_4d.nii.gz) nor the frame \(f) image (\(stem).nii.gz)")
                    }
                    let v = try NIfTI.read3D(fp)
                    try checkImage(v, name: (fp as NSString).lastPathComponent)
                    frames[f - 1] = v
                }
                let a = frames[info.ed - 1]!, b = frames[info.es - 1]!
                guard a.shape == b.shape, a.geometry.matches(b.geometry, tolerance: 1e-4) else {
                    throw StudyError("the ED and ES frame images of the ACDC folder lie on different grids")
                }
                s = StudyInput(kind: .acdc, image: a, keyFrames: frames, files: files)
            }
            s.edES = (info.ed - 1, info.es - 1)
            s.heightCm = info.heightCm
            s.weightKg = info.weightKg
            return s
        case .dicom:
            let cine = try DicomStudyReader.readCine(folder: path, rules: rules)
            try checkImage(cine.volume, name: "the DICOM cine")
            var s = StudyInput(kind: .dicom, image: cine.volume, dicom: cine, files: try listFiles(path).filter { $0 != marker })
            s.heightCm = cine.info.heightCm
            s.weightKg = cine.info.patientWeightKg
            return s
        }
    }

    static func isLabelName(_ rel: String) -> Bool {
        let stem = Journal.stem((rel as NSString).lastPathComponent)
        return stem.hasSuffix("_gt") || stem.hasSuffix("_label") || stem.hasSuffix("_labels") || stem.hasSuffix("_seg")
    }

    static func readInfo(_ path: String, study: String) throws -> ACDCInfo {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw StudyError("Info.cfg is not readable text") }
        do { return try ACDCInfo(parsing: text, source: "Info.cfg") } catch { throw StudyError("\(error)") }
    }

    /// A short-axis stack the encoder can take: at least 2 slices, finite positive spacing, finite values.
    static func checkImage(_ v: Volume, name: String) throws {
        let s = v.shape
        guard s.nx >= 8, s.ny >= 8 else { throw StudyError("\(name) is \(s): slices of at least 8 x 8 pixels are needed") }
        guard s.nz >= 2 else { throw StudyError("\(name) is a single slice (\(s)); a short-axis stack of at least 2 slices is needed") }
        let sp = v.geometry.spacing
        guard [sp.x, sp.y, sp.z].allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw StudyError("\(name) has voxel spacing \(sp.x) x \(sp.y) x \(sp.z) mm; positive finite spacing is needed")
        }
        guard v.floats(range: 0..<min(v.shape.count, 1 << 20)).allSatisfy(\.isFinite) else {
            throw StudyError("\(name) holds non-finite voxel values (NaN or infinity)")
        }
    }
}

/// ACDC file names: `<id>_4d.nii[.gz]` or `<id>_frameNN.nii[.gz]` at the folder's top level.
enum ACDCLike {
    /// The patient id the top-level NIfTI files share, if they follow the ACDC layout.
    static func prefix(_ files: [String]) -> String? {
        for f in files where !f.contains("/") && StudyInput.isNIfTIName(f) {
            let stem = Journal.stem(f)
            if stem.hasSuffix("_4d") { return String(stem.dropLast(3)) }
            if let r = stem.range(of: "_frame", options: .backwards), !stem.hasSuffix("_gt") {
                let digits = stem[r.upperBound...]
                if digits.count >= 2, digits.allSatisfy(\.isNumber) { return String(stem[..<r.lowerBound]) }
            }
        }
        return nil
    }
}
