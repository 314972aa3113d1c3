import Foundation

/// A patient's `Info.cfg` in the ACDC layout ("Key: value" lines).
public struct ACDCInfo: Codable, Equatable, Sendable {
    /// End-diastolic and end-systolic frames, 1-based as ACDC counts.
    public var ed: Int
    public var es: Int
    public var group: String
    public var heightCm: Double?
    public var weightKg: Double?
    public var frameCount: Int

    public init(ed: Int, es: Int, group: String, heightCm: Double?, weightKg: Double?, frameCount: Int) {
        self.ed = ed
        self.es = es
        self.group = group
        self.heightCm = heightCm
        self.weightKg = weightKg
        self.frameCount = frameCount
    }

    public init(parsing text: String, source: String = "Info.cfg") throws {
        var fields: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            fields[parts[0].trimmingCharacters(in: .whitespaces)] = parts[1].trimmingCharacters(in: .whitespaces)
        }
        func int(_ key: String) throws -> Int {
            guard let s = fields[key] else { throw ImagingError.invalidDataset("\(source): missing \(key)") }
            guard let v = Int(s) ?? Double(s).map({ Int($0) }) else {
                throw ImagingError.invalidDataset("\(source): \(key) is not a number: \(s)")
            }
            return v
        }
        ed = try int("ED")
        es = try int("ES")
        frameCount = (try? int("NbFrame")) ?? max(ed, es)
        group = fields["Group"] ?? "unknown"
        heightCm = fields["Height"].flatMap(Double.init)
        weightKg = fields["Weight"].flatMap(Double.init)
        guard ed >= 1, es >= 1, ed <= frameCount, es <= frameCount else {
            throw ImagingError.invalidDataset("\(source): ED \(ed) / ES \(es) outside frames 1...\(frameCount)")
        }
    }

    /// The file text, in ACDC's key order.
    public var text: String {
        var lines = ["ED: \(ed)", "ES: \(es)", "Group: \(group)"]
        if let h = heightCm { lines.append(String(format: "Height: %.1f", h)) }
        lines.append("NbFrame: \(frameCount)")
        if let w = weightKg { lines.append(String(format: "Weight: %.1f", w)) }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// One patient folder of the ACDC layout: `patientNNN/Info.cfg`, `patientNNN_4d.nii.gz`,
/// `patientNNN_frameFF.nii.gz` and `patientNNN_frameFF_gt.nii.gz`.
public struct ACDCPatient: Sendable {
    public var id: String
    public var folder: String
    public var info: ACDCInfo

    public init(folder: String) throws {
        self.folder = folder
        id = URL(fileURLWithPath: folder).lastPathComponent
        let cfg = folder + "/Info.cfg"
        guard let text = try? String(contentsOfFile: cfg, encoding: .utf8) else {
            throw ImagingError.invalidDataset("\(id): no readable Info.cfg")
        }
        info = try ACDCInfo(parsing: text, source: "\(id)/Info.cfg")
    }

    public static func frameName(_ id: String, frame: Int) -> String { String(format: "%@_frame%02d", id, frame) }

    /// Path of a frame's image (1-based frame), `.nii.gz` preferred over `.nii`.
    public func imagePath(frame: Int) -> String { existing(ACDCPatient.frameName(id, frame: frame)) }
    public func labelPath(frame: Int) -> String { existing(ACDCPatient.frameName(id, frame: frame) + "_gt") }
    public var cinePath: String { existing(id + "_4d") }

    private func existing(_ stem: String) -> String {
        let gz = "\(folder)/\(stem).nii.gz"
        let plain = "\(folder)/\(stem).nii"
        return FileManager.default.fileExists(atPath: gz) || !FileManager.default.fileExists(atPath: plain) ? gz : plain
    }

    public func hasLabels(frame: Int) -> Bool { FileManager.default.fileExists(atPath: labelPath(frame: frame)) }

    /// Image and labels of one frame, checked to share a grid.
    public func labelledFrame(_ frame: Int) throws -> (image: Volume, labels: LabelMap) {
        try NIfTI.readPair(image: imagePath(frame: frame), labels: labelPath(frame: frame))
    }
}

/// An ACDC-layout dataset folder: one `patient*` folder per patient (optionally under
/// `training/` or `testing/`).
public enum ACDCDataset {
    public static func patients(in folder: String) throws -> [ACDCPatient] {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw ImagingError.invalidDataset("not a folder: \(folder)")
        }
        var roots = [folder]
        for sub in ["training", "testing"] where fm.fileExists(atPath: folder + "/" + sub) {
            roots.append(folder + "/" + sub)
        }
        var out: [ACDCPatient] = []
        for root in roots {
            let names = (try? fm.contentsOfDirectory(atPath: root)) ?? []
            for name in names.sorted() where name.hasPrefix("patient") {
                let path = root + "/" + name
                if fm.fileExists(atPath: path + "/Info.cfg") { out.append(try ACDCPatient(folder: path)) }
            }
        }
        guard !out.isEmpty else { throw ImagingError.invalidDataset("no patient folders with Info.cfg in \(folder)") }
        return out
    }
}
