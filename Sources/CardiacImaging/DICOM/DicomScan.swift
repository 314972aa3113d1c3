import Foundation

/// The images of one Series Instance UID found in a folder.
public struct DicomSeries: Sendable {
    public var seriesInstanceUID: String
    public var seriesNumber: Int?
    public var description: String
    public var modality: String
    /// One header per SOP Instance UID (a file received twice counts once) and, for
    /// multi-frame files, per frame; in path order.
    public var images: [DicomHeader]

    /// A name for messages: the series number and description (no identifiers).
    public var label: String {
        let number = seriesNumber.map { "#\($0)" } ?? "#?"
        return description.isEmpty ? number : "\(number) '\(description)'"
    }
}

/// A file the scan set aside, and why.
public struct DicomSkippedFile: Sendable, Equatable {
    public var path: String
    public var reason: String
}

/// What a folder holds: image series, and the DICOM objects and other files set aside.
public struct DicomFolderScan: Sendable {
    public var folder: String
    public var series: [DicomSeries]
    /// DICOM objects that are not images (SEG, SR, ...).
    public var nonImages: [DicomSkippedFile]
    /// Files that are not DICOM (DICOMDIR indexes, notes, ...).
    public var notDicom: [DicomSkippedFile]
    public var fileCount: Int
}

/// Finds and groups the DICOM files of a study folder.
public enum DicomScanner {
    /// Every regular file under `folder` (recursively), hidden files and DICOMDIR excluded,
    /// sorted by path.
    public static func files(in folder: String) throws -> [String] {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: folder, isDirectory: &isDir) else { throw DicomError.readFailed(path: folder, reason: "no such folder") }
        guard isDir.boolValue else { return [folder] }
        guard let walker = fm.enumerator(atPath: folder) else {
            throw DicomError.readFailed(path: folder, reason: "cannot list the folder")
        }
        var out: [String] = []
        while let rel = walker.nextObject() as? String {
            let name = (rel as NSString).lastPathComponent
            if name.hasPrefix(".") {
                if walker.fileAttributes?[.type] as? FileAttributeType == .typeDirectory { walker.skipDescendants() }
                continue
            }
            if name.uppercased() == "DICOMDIR" { continue }
            if walker.fileAttributes?[.type] as? FileAttributeType == .typeRegular { out.append(folder + "/" + rel) }
        }
        return out.sorted()
    }

    /// Reads the header of every file and groups the images by Series Instance UID.
    /// Files that are not DICOM are set aside; DICOM files that are damaged (truncated,
    /// corrupt) fail the scan, since dropping them would silently change the volume.
    public static func scan(_ folder: String) throws -> DicomFolderScan {
        let paths = try files(in: folder)
        let results = ResultBox<[DicomHeader]>(count: paths.count)
        let notDicom = SkipBox()
        // Header parsing is cheap but there can be thousands of files: two workers.
        let workers = min(2, max(1, paths.count))
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var i = w
            while i < paths.count {
                do {
                    results.set(i, .success(try DicomFile.readHeaders(paths[i])))
                } catch let DicomError.notDicom(path, reason) {
                    notDicom.add(DicomSkippedFile(path: path, reason: reason))
                    results.set(i, .success([]))
                } catch {
                    results.set(i, .failure(error))
                }
                i += workers
            }
        }
        let headers = try results.values().flatMap { $0 }
        var nonImages: [DicomSkippedFile] = []
        var bySeries: [String: [DicomHeader]] = [:]
        var seen = Set<String>()
        for h in headers {
            guard h.isImage else {
                nonImages.append(DicomSkippedFile(path: h.path, reason: h.hasPixelData ? h.kind : "\(h.kind) without pixel data"))
                continue
            }
            if !h.sopInstanceUID.isEmpty {
                guard seen.insert(h.sopInstanceUID + "/\(h.frameIndex ?? -1)").inserted else { continue }
            }
            bySeries[h.seriesInstanceUID, default: []].append(h)
        }
        let series = bySeries.map { uid, images in
            DicomSeries(
                seriesInstanceUID: uid, seriesNumber: images.compactMap(\.seriesNumber).first,
                description: images.first(where: { !$0.seriesDescription.isEmpty })?.seriesDescription ?? "",
                modality: images[0].modality, images: images)
        }.sorted { ($0.seriesNumber ?? Int.max, $0.description, $0.seriesInstanceUID) < ($1.seriesNumber ?? Int.max, $1.description, $1.seriesInstanceUID) }
        return DicomFolderScan(
            folder: folder, series: series, nonImages: nonImages,
            notDicom: notDicom.items.sorted { $0.path < $1.path }, fileCount: paths.count)
    }
}

/// Collects skipped files from concurrent workers.
final class SkipBox: @unchecked Sendable {
    private var list: [DicomSkippedFile] = []
    private let lock = NSLock()

    func add(_ f: DicomSkippedFile) {
        lock.lock()
        list.append(f)
        lock.unlock()
    }

    var items: [DicomSkippedFile] {
        lock.lock()
        defer { lock.unlock() }
        return list
    }
}
