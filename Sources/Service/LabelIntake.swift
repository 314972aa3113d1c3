import CardiacImaging
import Foundation

/// One corrected volume: a 3D frame and its label map on the same grid.
public struct LabelledVolume {
    public var image: Volume
    public var labels: LabelMap
    /// Where it came from, for the refit record ("<item> frame N").
    public var source: String
}

/// Reads what a person drops into the labels folder: one folder per item, holding
/// - a NIfTI pair: one image and one label map named `<stem>_gt` (or `_label`, `_labels`, `_seg`);
/// - an ACDC patient folder: `Info.cfg` and `<id>_frameNN.nii.gz` with `<id>_frameNN_gt.nii.gz`;
/// - a DICOM study with one or more DICOM SEG files, each segmenting one phase of the cine.
/// Every volume is validated: same grid as its image, label values within 0...3, some foreground.
public enum LabelIntake {
    public static func read(_ path: String, rules: SeriesRules, marker: String) throws -> [LabelledVolume] {
        try FileTree.refuseUnsafe(path, what: "labelled item")
        guard EntryType.of(path) == .folder else {
            throw StudyError("a labelled item is a folder (image + label map, an ACDC patient folder, or DICOM + SEG); '\((path as NSString).lastPathComponent)' is a single file")
        }
        let name = (path as NSString).lastPathComponent
        let files = try StudyInput.listFiles(path).filter { $0 != marker && !($0 as NSString).lastPathComponent.hasPrefix(".") }
        guard !files.isEmpty else { throw StudyError("the folder '\(name)' holds no files") }
        let niftis = files.filter { StudyInput.isNIfTIName($0) }
        var out: [LabelledVolume] = []
        if files.contains("Info.cfg") {
            // ACDC layout: every `<id>_frameNN_gt` with its `<id>_frameNN` image.
            let gts = niftis.filter { !$0.contains("/") && Journal.stem($0).hasSuffix("_gt") }.sorted()
            guard !gts.isEmpty else { throw StudyError("the ACDC folder '\(name)' has no _gt label maps") }
            for g in gts {
                let stem = String(Journal.stem(g).dropLast(3))
                guard let image = [".nii.gz", ".nii"].map({ path + "/" + stem + $0 }).first(where: { FileManager.default.fileExists(atPath: $0) }) else {
                    throw StudyError("\(g) has no image \(stem).nii.gz beside it")
                }
                let (img, lab) = try readPair(image: image, labels: path + "/" + g)
                let frame = stem.range(of: "_frame", options: .backwards).map { String(stem[$0.upperBound...]) } ?? stem
                out.append(LabelledVolume(image: img, labels: lab, source: "\(name) frame \(frame)"))
            }
        } else if !niftis.isEmpty {
            let labels = niftis.filter(StudyInput.isLabelName)
            let images = niftis.filter { !StudyInput.isLabelName($0) }
            guard images.count == 1, labels.count == 1 else {
                throw StudyError("a NIfTI labelled item holds exactly one image and one label map named <stem>_gt (found \(images.count) image(s) and \(labels.count) label map(s))")
            }
            let (img, lab) = try readPair(image: path + "/" + images[0], labels: path + "/" + labels[0])
            out.append(LabelledVolume(image: img, labels: lab, source: name))
        } else {
            out = try readDicomWithSeg(path, name: name, rules: rules)
        }
        return out
    }

    static func readPair(image: String, labels: String) throws -> (Volume, LabelMap) {
        let img = try NIfTI.read3D(image)
        let lab = try NIfTI.readLabelMap(labels, maxClass: 255)
        try check(lab, image: img, what: (labels as NSString).lastPathComponent)
        return (img, lab)
    }

    static func check(_ lab: LabelMap, image: Volume, what: String) throws {
        do { try lab.validate(against: image) } catch { throw StudyError("\(what): \(error)") }
        do { try lab.validate(maxClass: 3) } catch { throw StudyError("\(what): \(error) (0 background, 1 RV, 2 myocardium, 3 LV)") }
        guard lab.labels.contains(where: { $0 != 0 }) else { throw StudyError("\(what) holds only background") }
    }

    /// DICOM cine plus SEG objects: each SEG's frames reference source images of one phase.
    static func readDicomWithSeg(_ path: String, name: String, rules: SeriesRules) throws -> [LabelledVolume] {
        let scan = try DicomScanner.scan(path)
        let segFiles = scan.nonImages.filter { $0.reason.localizedCaseInsensitiveContains("seg") }.map(\.path)
        guard !segFiles.isEmpty else {
            throw StudyError("the folder '\(name)' holds neither NIfTI files nor a DICOM SEG: nothing to learn from")
        }
        let chosen = try rules.chooseCine(from: scan)
        let cine = try DicomStudyReader.read(chosen.layout!)
        let nz = cine.volume.shape.nz, nt = cine.volume.shape.nt
        var phaseOf: [String: Int] = [:]
        for k in 0..<nz { for t in 0..<nt { phaseOf[cine.source(slice: k, frame: t).sopInstanceUID] = t } }
        var out: [LabelledVolume] = []
        for f in segFiles.sorted() {
            let seg = try DicomSegReader.read(f)
            let phases = Set(seg.frames.compactMap { phaseOf[$0.referencedSOPInstanceUID] })
            guard phases.count == 1, let t = phases.first else {
                throw StudyError("\((f as NSString).lastPathComponent): its frames reference \(phases.count) phases of the cine; one phase per SEG is needed")
            }
            let lab = try seg.labelMap(on: cine.volume.geometry, slices: nz)
            let img = try cine.volume.frame(t)
            try check(lab, image: img, what: (f as NSString).lastPathComponent)
            out.append(LabelledVolume(image: img, labels: lab, source: "\(name) phase \(t + 1)"))
        }
        return out
    }
}
