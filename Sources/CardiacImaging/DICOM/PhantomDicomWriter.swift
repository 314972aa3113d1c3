import Foundation

/// How the phantom's DICOM studies are written.
public struct PhantomDicomOptions: Sendable {
    /// Random file names (from the seed), so that the order on disk says nothing about
    /// slices or phases; otherwise `cine_SSSS_FFFF.dcm`-style names in slice/phase order.
    public var scrambleFileOrder = false
    /// Adds a 3-slice axial localiser series (another orientation, size and spacing).
    public var localizer = true
    /// The frames (0-based) to write; nil: all of them.
    public var frames: [Int]? = nil
    /// Rescale Slope / Intercept of the cine: stored = (value - intercept) / slope.
    public var rescaleSlope = 1.0
    public var rescaleIntercept = 0.0
    public var seriesDescription = "sa_cine"
    /// Writes the cine as one Enhanced MR Image file (all slices and phases as frames; with
    /// `scrambleFileOrder` the frames are shuffled inside it) instead of one file per image.
    public var enhanced = false

    public init() {}
}

/// One phantom patient written as DICOM.
public struct PhantomDicomStudy: Sendable {
    public var folder: String
    public var patient: Int
    public var truth: PhantomTruth
    /// The cine grid in the NIfTI world (what reading the DICOM must give back).
    public var geometry: VolumeGeometry
    public var shape: GridShape
    public var frames: [Int]
    public var fileCount: Int
}

/// Writes `PhantomGenerator`'s studies as classic MR Image Storage files: one file per slice
/// and phase of the short-axis cine (oblique, non-square matrix, LPS geometry), plus an axial
/// localiser, with realistic attributes and synthetic identifiers.
public enum PhantomDicomWriter {
    public static func generate(
        into outDir: String, patients count: Int, seed: UInt64, first: Int = 1, options: PhantomDicomOptions = PhantomDicomOptions()
    ) throws -> [PhantomDicomStudy] {
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        return try (first..<(first + count)).map { try writePatient(number: $0, seed: seed, outDir: outDir, options: options) }
    }

    /// Writes `outDir/patientNNN/` and returns what it holds.
    public static func writePatient(
        number n: Int, seed: UInt64, outDir: String, options: PhantomDicomOptions = PhantomDicomOptions()
    ) throws -> PhantomDicomStudy {
        let id = String(format: "patient%03d", n)
        let p = PhantomParameters.sample(seed: seed, patient: n, group: PhantomGenerator.group(ofPatient: n))
        let renderer = PhantomRenderer(model: HeartModel(p), seed: seed, patient: n)
        let geom = PhantomGenerator.geometry(p)
        let folder = outDir + "/" + id
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let frames = options.frames ?? Array(0..<p.nt)
        guard frames.allSatisfy({ $0 >= 0 && $0 < p.nt }) else {
            throw DicomError.invalidArgument("phantom frames must lie in 0..<\(p.nt)")
        }
        let s = seed, pn = UInt64(n)
        var base = DicomMRImage(
            sopInstanceUID: "", studyInstanceUID: DicomUID.derived(s, pn, 1), seriesInstanceUID: DicomUID.derived(s, pn, 3),
            frameOfReferenceUID: DicomUID.derived(s, pn, 2), rows: p.ny, columns: p.nx)
        base.patientID = String(format: "PHANTOM-%03d", n)
        base.patientName = String(format: "Phantom^Patient%03d", n)
        base.patientSex = "O"
        base.studyDate = "20250101"
        base.studyTime = "120000"
        base.studyID = "1"
        base.accessionNumber = String(format: "PH%llu%03d", seed, n)
        base.studyDescription = "Cardiac MRI (synthetic phantom)"
        base.patientSizeM = p.heightCm / 100
        base.patientWeightKg = p.weightKg
        base.heartRate = 60_000 / (p.frameIntervalMs * Double(p.nt))

        var names = NameSource(seed: seed, patient: n, scramble: options.scrambleFileOrder)
        var jobs: [(name: String, image: DicomMRImage, k: Int, t: Int)] = []
        let row = DicomGeometry.rasToLPS(geom.direction[0]), col = DicomGeometry.rasToLPS(geom.direction[1])
        let normal = row.cross(col)
        for t in frames {
            for k in 0..<p.nz {
                var m = base
                let instance = k * p.nt + t + 1
                m.sopInstanceUID = DicomUID.derived(s, pn, 5, 5, UInt64(instance))
                m.seriesDescription = options.seriesDescription
                m.seriesNumber = 5
                m.instanceNumber = instance
                m.acquisitionNumber = k + 1
                let pos = DicomGeometry.rasToLPS(geom.affine.apply(SIMD3(0, 0, Double(k))))
                m.imagePosition = pos
                m.imageOrientation = (row, col)
                m.pixelSpacing = SIMD2(p.pixelSpacing, p.pixelSpacing)
                m.sliceThickness = (p.sliceSpacing * 0.8 * 100).rounded() / 100  // gaps between slices
                m.sliceLocation = pos.dot(normal)
                m.triggerTime = Double(t) * p.frameIntervalMs
                m.cardiacNumberOfImages = p.nt
                m.rescale = options.rescaleSlope == 1 && options.rescaleIntercept == 0
                    ? nil : (options.rescaleSlope, options.rescaleIntercept)
                jobs.append((names.next(String(format: "cine_s%02d_f%02d", k + 1, t + 1)), m, k, t))
            }
        }
        if options.scrambleFileOrder && options.enhanced {
            var rng = SeededRandom(seed: seed, streams: pn, 78)
            for i in stride(from: jobs.count - 1, to: 0, by: -1) { jobs.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        }
        let results = ResultBox<[UInt16]>(count: jobs.count)
        let work = jobs
        DispatchQueue.concurrentPerform(iterations: min(2, jobs.count)) { w in
            var i = w
            while i < work.count {
                let job = work[i]
                results.set(i, Result {
                    let img = renderer.image(renderer.classify(slice: job.k, frame: job.t), slice: job.k, frame: job.t)
                    let stored = img.map { v -> UInt16 in
                        UInt16(clamping: Int(((Double(v) - options.rescaleIntercept) / options.rescaleSlope).rounded()))
                    }
                    if !options.enhanced { try DicomMRWriter.write(job.image, pixels: stored, to: folder + "/" + job.name) }
                    return options.enhanced ? stored : []
                })
                i += 2
            }
        }
        let rendered = try results.values()
        var count = jobs.count
        if options.enhanced {
            var m = base
            m.sopInstanceUID = DicomUID.derived(s, pn, 5, 0)
            m.seriesDescription = options.seriesDescription
            m.seriesNumber = 5
            m.cardiacNumberOfImages = p.nt
            let attributes = jobs.map { job -> DicomFrameAttributes in
                let i = job.image
                var f = DicomFrameAttributes(
                    imagePosition: i.imagePosition!, imageOrientation: i.imageOrientation!, pixelSpacing: i.pixelSpacing!,
                    sliceThickness: i.sliceThickness, triggerTime: i.triggerTime, temporalPositionIndex: job.t + 1,
                    inStackPosition: job.k + 1)
                f.rescaleSlope = options.rescaleSlope
                f.rescaleIntercept = options.rescaleIntercept
                return f
            }
            try DicomMRWriter.writeEnhanced(m, frames: attributes, pixels: rendered.flatMap { $0 }, to: folder + "/" + names.next("cine_enhanced"))
            count = 1
        }
        if options.localizer {
            count += try writeLocalizer(base: base, p: p, geometry: geom, seed: seed, patient: n, names: &names, folder: folder)
        }
        return PhantomDicomStudy(
            folder: folder, patient: n, truth: PhantomGenerator.truth(patient: n, seed: seed), geometry: geom,
            shape: GridShape(p.nx, p.ny, p.nz, frames.count), frames: frames, fileCount: count)
    }

    /// Three parallel axial slices through the heart: another orientation, matrix and
    /// spacing, one phase, no trigger time.
    static func writeLocalizer(
        base: DicomMRImage, p: PhantomParameters, geometry: VolumeGeometry, seed: UInt64, patient: Int,
        names: inout NameSource, folder: String
    ) throws -> Int {
        let size = 192, spacing = 1.8, gap = 12.0
        let centre = DicomGeometry.rasToLPS(geometry.world(SIMD3(Double(p.nx - 1) / 2, Double(p.ny - 1) / 2, Double(p.nz - 1) / 2)))
        for k in 0..<3 {
            var m = base
            m.seriesInstanceUID = DicomUID.derived(seed, UInt64(patient), 4)
            m.sopInstanceUID = DicomUID.derived(seed, UInt64(patient), 6, UInt64(k))
            m.seriesDescription = "localizer"
            m.seriesNumber = 1
            m.instanceNumber = k + 1
            m.rows = size
            m.columns = size
            let half = Double(size - 1) / 2 * spacing
            let z = centre.z + Double(k - 1) * gap
            m.imagePosition = SIMD3(centre.x - half, centre.y - half, z)
            m.imageOrientation = (SIMD3(1, 0, 0), SIMD3(0, 1, 0))
            m.pixelSpacing = SIMD2(spacing, spacing)
            m.sliceThickness = 8
            m.sliceLocation = z
            m.cardiacNumberOfImages = 0
            // A soft ellipse (the chest) on a dark background.
            var pixels = [UInt16](repeating: 0, count: size * size)
            for j in 0..<size {
                for i in 0..<size {
                    let u = (Double(i) - Double(size) / 2) / (0.42 * Double(size)), v = (Double(j) - Double(size) / 2) / (0.3 * Double(size))
                    pixels[j * size + i] = UInt16(max(0, 400 * (1 - (u * u + v * v))) + 20)
                }
            }
            try DicomMRWriter.write(m, pixels: pixels, to: folder + "/" + names.next(String(format: "loc_%02d", k + 1)))
        }
        return 3
    }
}

/// File names: ordered, or random from the seed (scrambled order on disk).
struct NameSource {
    var rng: SeededRandom
    let scramble: Bool

    init(seed: UInt64, patient: Int, scramble: Bool) {
        rng = SeededRandom(seed: seed, streams: UInt64(patient), 77)
        self.scramble = scramble
    }

    mutating func next(_ ordered: String) -> String {
        guard scramble else { return ordered + ".dcm" }
        return String(format: "IM%08llX%08llX", rng.next() & 0xFFFF_FFFF, rng.next() & 0xFFFF_FFFF)
    }
}
