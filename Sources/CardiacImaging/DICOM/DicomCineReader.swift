import Foundation

/// A cine series read from DICOM: the 4D volume (i = column, j = row, k = slice along the
/// normal, t = frame) in the NIfTI world (RAS+), the study facts, and the source image of
/// every (slice, frame) so that outputs (DICOM SEG) can reference them.
public struct DicomCine: Sendable {
    public var volume: Volume
    public var info: DicomStudyInfo
    public var layout: DicomSeriesLayout

    /// The source image of slice k, frame t.
    public func source(slice k: Int, frame t: Int) -> DicomHeader { layout.images[k][t] }
}

/// Reads study folders: finds the short-axis cine by `SeriesRules` and builds its volume.
public enum DicomStudyReader {
    /// Scans `folder`, chooses the short-axis cine and reads it.
    public static func readCine(folder: String, rules: SeriesRules = .default) throws -> DicomCine {
        let scan = try DicomScanner.scan(folder)
        let chosen = try rules.chooseCine(from: scan)
        return try read(chosen.layout!)
    }

    /// Reads the pixels of an arranged series into a volume with its geometry and timing.
    ///
    /// Stored values keep their integer type when every image shares one rescale (the
    /// slope and intercept go to the volume); otherwise the physical values are stored as
    /// float32.
    public static func read(_ layout: DicomSeriesLayout) throws -> DicomCine {
        let nx = layout.columns, ny = layout.rows, nz = layout.sliceCount, nt = layout.frameCount
        let plane = nx * ny, frameSize = plane * nz
        let all = (0..<(nz * nt)).map { layout.images[$0 % nz][$0 / nz] }  // index = t * nz + k
        // Each file is read once (a multi-frame file holds many of the images).
        var files: [String: DicomHeader] = [:]
        for h in all where files[h.path] == nil { files[h.path] = h }
        let paths = files.keys.sorted(), heads = files
        let results = ResultBox<[Int32]>(count: paths.count)
        let workers = min(2, paths.count)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var i = w
            while i < paths.count {
                results.set(i, Result { try DicomFile.readPixels(heads[paths[i]]!) })
                i += workers
            }
        }
        let byPath = Dictionary(uniqueKeysWithValues: zip(paths, try results.values()))
        let pixels = all.map { h -> ArraySlice<Int32> in
            let buffer = byPath[h.path]!
            guard let f = h.frameIndex else { return buffer[...] }
            return buffer[(f * plane)..<((f + 1) * plane)]
        }
        let first = all[0]
        let sharedRescale = all.allSatisfy { $0.rescaleSlope == first.rescaleSlope && $0.rescaleIntercept == first.rescaleIntercept }
        var lo = Int32.max, hi = Int32.min
        for p in pixels {
            for v in p {
                lo = min(lo, v)
                hi = max(hi, v)
            }
        }
        func gather<T>(_ convert: (Int32, DicomHeader) -> T) -> [T] {
            var out = [T]()
            out.reserveCapacity(frameSize * nt)
            for (n, p) in pixels.enumerated() { out += p.map { convert($0, all[n]) } }
            return out
        }
        let data: VoxelData
        var slope = 1.0, intercept = 0.0
        if sharedRescale {
            slope = first.rescaleSlope
            intercept = first.rescaleIntercept
            if lo >= Int32(Int16.min) && hi <= Int32(Int16.max) {
                data = .int16(gather { v, _ in Int16(v) })
            } else if lo >= 0 && hi <= Int32(UInt16.max) {
                data = .uint16(gather { v, _ in UInt16(v) })
            } else {
                data = .int32(gather { v, _ in v })
            }
        } else {
            data = .float32(gather { v, h in Float(Double(v) * h.rescaleSlope + h.rescaleIntercept) })
        }
        let volume = Volume(
            shape: GridShape(nx, ny, nz, nt), geometry: layout.geometry, data: data, slope: slope, intercept: intercept,
            timing: nt > 1 ? timing(layout) : nil, descrip: "autosam from DICOM")
        return DicomCine(volume: volume, info: DicomStudyInfo(header: first), layout: layout)
    }

    /// Frame timing from Trigger Time (averaged over slices); without trigger times, the
    /// R-R interval (Heart Rate) divided by the frame count; else unknown (interval 0).
    public static func timing(_ layout: DicomSeriesLayout) -> FrameTiming {
        let nt = layout.frameCount
        let times = (0..<nt).map { t in layout.images.compactMap { $0[t].triggerTime } }
        if times.allSatisfy({ $0.count == layout.sliceCount }) {
            let mean = times.map { $0.reduce(0, +) / Double($0.count) }
            return FrameTiming(frameInterval: (mean[nt - 1] - mean[0]) / Double(nt - 1), offset: mean[0])
        }
        if let hr = layout.images[0][0].heartRate, hr > 0 {
            return FrameTiming(frameInterval: 60_000 / hr / Double(nt))
        }
        return FrameTiming(frameInterval: 0)
    }
}
