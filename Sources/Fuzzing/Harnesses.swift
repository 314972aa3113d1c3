import CardiacImaging
import Crypto
import Foundation
import Service

@testable import AutoSAM
@testable import NN

/// One fuzzing harness: a parser of untrusted input fed arbitrary bytes. A harness must never
/// crash, hang or allocate without bound; errors (thrown with a reason) are the expected outcome
/// for most inputs. `autosam-fuzz` runs one under libFuzzer; the tests replay the committed
/// corpora and every regression input through them (docs/RELIABILITY.md).
public struct FuzzHarness: Sendable {
    public var name: String
    /// What it reaches, for the listing.
    public var summary: String
    /// Runs one input. Returns whether the parser accepted it (for the replay summary).
    public var run: @Sendable (Data) -> Bool
}

public enum FuzzHarnesses {
    /// Every harness, by name.
    public static let all: [FuzzHarness] = [
        FuzzHarness(name: "checkpoint", summary: "PyTorch .pth: zip container, restricted unpickler, storages", run: checkpoint),
        FuzzHarness(name: "pickle", summary: "the restricted unpickler alone (data.pkl bytes)", run: pickle),
        FuzzHarness(name: "safetensors", summary: "safetensors header and tensors", run: safetensors),
        FuzzHarness(name: "nifti", summary: "NIfTI-1/2 header and voxels (nifti2_io through the C shim)", run: nifti),
        FuzzHarness(name: "dicom-file", summary: "one DICOM file: header, frames, pixels (DCMTK through the C++ shim)", run: dicomFile),
        FuzzHarness(name: "dicom-study", summary: "a DICOM study folder: up to 8 files cut from the input, series rules, cine", run: dicomStudy),
        FuzzHarness(name: "config", summary: "the service's TOML configuration", run: config),
        FuzzHarness(name: "info-cfg", summary: "ACDC Info.cfg", run: infoCfg),
        FuzzHarness(name: "embedding-cache", summary: "an embedding cache entry's payload (digest made to match)", run: embeddingCache),
        FuzzHarness(name: "head-model", summary: "a head model folder: model.json, NUL, head.safetensors", run: headModel),
    ]

    public static func named(_ name: String) -> FuzzHarness? { all.first { $0.name == name } }

    /// A scratch folder of this process (under $TMPDIR), made once.
    static let scratch: String = {
        let dir = NSTemporaryDirectory() + "/autosam-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    /// Writes `data` to a scratch file named `name` and returns its path.
    static func file(_ name: String, _ data: Data) -> String {
        let path = scratch + "/" + name
        _ = FileManager.default.createFile(atPath: path, contents: data)
        return path
    }

    /// A fresh, empty scratch folder.
    static func folder(_ name: String) -> String {
        let path = scratch + "/" + name
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func accepts(_ body: () throws -> Void) -> Bool {
        do { try body(); return true } catch { return false }
    }

    static let checkpoint: @Sendable (Data) -> Bool = { data in
        accepts { _ = try TorchCheckpoint.load(file("input.pth", data)) }
    }

    static let pickle: @Sendable (Data) -> Bool = { data in
        accepts {
            var u = RestrictedUnpickler(data)
            _ = try u.load()
        }
    }

    static let safetensors: @Sendable (Data) -> Bool = { data in
        accepts { _ = try SafeTensors.decode(data) }
    }

    static let nifti: @Sendable (Data) -> Bool = { data in
        accepts {
            let path = file("input.nii", data)
            let v = try NIfTI.read(path)
            _ = v.floats(range: 0..<min(v.shape.count, 4096))
            _ = try? NIfTI.readLabelMap(path, maxClass: 255)
        }
    }

    static let dicomFile: @Sendable (Data) -> Bool = { data in
        accepts {
            let path = file("input.dcm", data)
            for h in try DicomFile.readHeaders(path) where h.isImage {
                _ = try DicomFile.readPixels(h)
            }
            _ = try? DicomSegReader.read(path)
        }
    }

    /// The separator that cuts a study input into files.
    public static let fileSeparator = Data("\n--autosam-fuzz-file--\n".utf8)

    static let dicomStudy: @Sendable (Data) -> Bool = { data in
        accepts {
            let dir = folder("study")
            for (i, part) in split(data, by: fileSeparator).prefix(8).enumerated() {
                _ = FileManager.default.createFile(atPath: dir + "/IM\(i)", contents: part)
            }
            var rules = SeriesRules.default
            rules.minPhases = 2
            rules.minSlices = 2
            _ = try DicomStudyReader.readCine(folder: dir, rules: rules)
        }
    }

    static let config: @Sendable (Data) -> Bool = { data in
        accepts {
            var c = try ServiceConfig.parse(String(decoding: data, as: UTF8.self), source: "fuzz.toml")
            c.data = scratch + "/data"
            _ = try? c.validate()
        }
    }

    static let infoCfg: @Sendable (Data) -> Bool = { data in
        accepts { _ = try ACDCInfo(parsing: String(decoding: data, as: UTF8.self)) }
    }

    static let embeddingCache: @Sendable (Data) -> Bool = { data in
        var entry = EmbeddingCache.magic
        entry.append(Data(SHA256.hash(data: data)))
        entry.append(data)
        return EmbeddingCache.decode(entry) != nil
    }

    static let headModel: @Sendable (Data) -> Bool = { data in
        accepts {
            let dir = folder("head")
            let cut = data.firstIndex(of: 0) ?? data.endIndex
            _ = FileManager.default.createFile(atPath: dir + "/model.json", contents: data[data.startIndex..<cut])
            _ = FileManager.default.createFile(atPath: dir + "/head.safetensors", contents: cut < data.endIndex ? data[(cut + 1)...] : Data())
            _ = try HeadModel.load(dir)
        }
    }

    /// `data` cut at every occurrence of `separator`.
    public static func split(_ data: Data, by separator: Data) -> [Data] {
        var parts: [Data] = []
        var start = data.startIndex
        while let r = data.range(of: separator, in: start..<data.endIndex) {
            parts.append(data[start..<r.lowerBound])
            start = r.upperBound
        }
        parts.append(data[start...])
        return parts
    }
}
