import CardiacImaging
import Foundation
import Service
import Tensor

@testable import AutoSAM
@testable import NN

/// Small valid inputs for each harness, written by the product's own writers: the start of
/// each fuzzing corpus (`autosam-fuzz seeds <folder>`). The checkpoint seeds come from
/// `scripts/fuzz/make_pth_seed.py` (a real pickle from Python's pickle module).
public enum FuzzSeeds {
    public static func write(into root: String) throws {
        let fm = FileManager.default
        func put(_ harness: String, _ name: String, _ data: Data) throws {
            try fm.createDirectory(atPath: root + "/" + harness, withIntermediateDirectories: true)
            try data.write(to: URL(fileURLWithPath: root + "/" + harness + "/" + name))
        }
        let tmp = NSTemporaryDirectory() + "/autosam-seeds-\(getpid())"
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: tmp) }

        // NIfTI: a small 4D cine (int16) and a 3D label map (uint8), oblique grids.
        let g = VolumeGeometry(spacing: SIMD3(1.5, 1.5, 8), origin: SIMD3(3, -4, 5), direction: [SIMD3(0.8, 0.6, 0), SIMD3(-0.6, 0.8, 0), SIMD3(0, 0, 1)])
        let cine = Volume(shape: GridShape(6, 5, 2, 2), geometry: g, data: .int16((0..<120).map { Int16($0 * 7 % 300) }), timing: FrameTiming(frameInterval: 40))
        try NIfTI.write(cine, to: tmp + "/cine.nii")
        try put("nifti", "cine.nii", try Data(contentsOf: URL(fileURLWithPath: tmp + "/cine.nii")))
        let labels = LabelMap(shape: GridShape(6, 5, 2, 1).spatial, geometry: g, labels: (0..<60).map { UInt8($0 % 4) })
        try NIfTI.write(labels, to: tmp + "/labels.nii")
        try put("nifti", "labels.nii", try Data(contentsOf: URL(fileURLWithPath: tmp + "/labels.nii")))

        // DICOM: classic MR images of a 2-slice, 2-phase cine; one file alone, and the study.
        let study = DicomUID.make(), series = DicomUID.make(), frame = DicomUID.make()
        var files: [Data] = []
        for k in 0..<2 {
            for t in 0..<2 {
                var m = DicomMRImage(sopInstanceUID: DicomUID.make(), studyInstanceUID: study, seriesInstanceUID: series,
                                     frameOfReferenceUID: frame, rows: 8, columns: 8)
                m.seriesDescription = "sa_cine"
                m.seriesNumber = 3
                m.instanceNumber = k * 2 + t + 1
                m.imagePosition = SIMD3(10, -20, 30 + 8 * Double(k))
                m.imageOrientation = (SIMD3(0.8, 0.6, 0), SIMD3(-0.6, 0.8, 0))
                m.pixelSpacing = SIMD2(1.5, 1.5)
                m.sliceThickness = 8
                m.triggerTime = Double(t) * 40
                m.cardiacNumberOfImages = 2
                try DicomMRWriter.write(m, pixels: (0..<64).map { UInt16($0 * 3 + 10 * t) }, to: tmp + "/im\(k)\(t).dcm")
                files.append(try Data(contentsOf: URL(fileURLWithPath: tmp + "/im\(k)\(t).dcm")))
            }
        }
        try put("dicom-file", "classic_mr.dcm", files[0])
        // The same cine as one Enhanced MR file (multi-frame, functional groups), and a SEG of
        // its first phase (the labelled-item path).
        var enhanced = DicomMRImage(sopInstanceUID: DicomUID.make(), studyInstanceUID: study, seriesInstanceUID: DicomUID.make(),
                                    frameOfReferenceUID: frame, rows: 8, columns: 8)
        enhanced.seriesDescription = "sa_cine"
        let frameAttrs = (0..<4).map { i in
            DicomFrameAttributes(imagePosition: SIMD3(10, -20, 30 + 8 * Double(i / 2)), imageOrientation: (SIMD3(0.8, 0.6, 0), SIMD3(-0.6, 0.8, 0)),
                                 pixelSpacing: SIMD2(1.5, 1.5), sliceThickness: 8, triggerTime: Double(i % 2) * 40,
                                 temporalPositionIndex: i % 2 + 1, inStackPosition: i / 2 + 1)
        }
        try DicomMRWriter.writeEnhanced(enhanced, frames: frameAttrs, pixels: (0..<256).map { UInt16($0 % 97) }, to: tmp + "/enhanced.dcm")
        try put("dicom-file", "enhanced_mr.dcm", try Data(contentsOf: URL(fileURLWithPath: tmp + "/enhanced.dcm")))
        var rules = SeriesRules.default
        rules.minPhases = 2
        rules.minSlices = 2
        try fm.createDirectory(atPath: tmp + "/study", withIntermediateDirectories: true)
        for (i, f) in files.enumerated() { try f.write(to: URL(fileURLWithPath: tmp + "/study/im\(i).dcm")) }
        let cineRead = try DicomStudyReader.readCine(folder: tmp + "/study", rules: rules)
        let seg = LabelMap(shape: cineRead.volume.shape.spatial, geometry: cineRead.volume.geometry,
                           labels: (0..<cineRead.volume.shape.voxelsPerFrame).map { UInt8($0 % 4) })
        try DicomSegWriter.write(seg, frame: 0, of: cineRead, to: tmp + "/seg.dcm")
        try put("dicom-file", "seg.dcm", try Data(contentsOf: URL(fileURLWithPath: tmp + "/seg.dcm")))
        var joined = Data()
        for (i, f) in files.enumerated() {
            if i > 0 { joined.append(FuzzHarnesses.fileSeparator) }
            joined.append(f)
        }
        try put("dicom-study", "cine_2x2", joined)

        // Safetensors, and a head model folder (model.json, NUL, head.safetensors).
        let st = try SafeTensors.encode(["a": Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6]), "b": Tensor(shape: [1], data: [0.5])], metadata: ["format": "seed"])
        try put("safetensors", "two_tensors.safetensors", st)
        var meta = try JSONDecoder().decode(HeadMetadata.self, from: Data(contentsOf: URL(fileURLWithPath: try DefaultModel.directory() + "/model.json")))
        meta.kind = .linear
        meta.inChannels = 4
        meta.plan.embeddingStatistics = nil
        try HeadModel.save(LinearHead(inChannels: 4, classes: meta.classes.count), metadata: meta, to: tmp + "/head")
        var head = try Data(contentsOf: URL(fileURLWithPath: tmp + "/head/model.json"))
        head.append(0)
        head.append(try Data(contentsOf: URL(fileURLWithPath: tmp + "/head/head.safetensors")))
        try put("head-model", "linear_head", head)

        // The embedding cache entry's payload (rank, shape, float16 values).
        let entry = EmbeddingCache.encode(Tensor(shape: [2, 2, 2], data: [0, 1, -1, 0.5, 2, -2, 3, 0.25]))
        try put("embedding-cache", "rank3", entry.suffix(from: entry.startIndex + EmbeddingCache.magic.count + 32))

        // Configuration and Info.cfg.
        try put("config", "minimal.toml", Data("[paths]\ndata = \"/var/lib/autosam\"\n[inbox]\nquiet_period_s = 2\n".utf8))
        try put("info-cfg", "acdc.cfg", Data("ED: 1\nES: 12\nGroup: NOR\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n".utf8))
    }
}
