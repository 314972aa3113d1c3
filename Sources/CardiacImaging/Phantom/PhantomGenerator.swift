import Foundation

/// What the phantom records beside each patient (`phantom_truth.json`): its parameters and
/// the analytic structure volumes of every frame.
public struct PhantomTruth: Codable, Sendable {
    public var generator: String
    public var seed: UInt64
    public var patient: String
    public var group: String
    /// 1-based, as in Info.cfg.
    public var edFrame: Int
    public var esFrame: Int
    public var sliceSpacingMM: Double
    public var pixelSpacingMM: Double
    public var frames: [HeartModel.FrameVolumes]
    public var parameters: PhantomParameters

    public var ed: HeartModel.FrameVolumes { frames[edFrame - 1] }
    public var es: HeartModel.FrameVolumes { frames[esFrame - 1] }

    /// The tolerances for stats measured on a phantom: LV volumes within 5% of the disc truth,
    /// LV ejection fraction within 3 points.
    public static let lvVolumeTolerance = 0.05
    public static let lvEFTolerance = 3.0

    /// How far measured LV volumes (mL) and EF (%) are from this phantom's disc truth at its ED
    /// and ES frames: the larger relative volume error of the two, and the EF error in points
    /// (NaN when no EF was measured).
    public func lvErrors(edv: Double, esv: Double, ef: Double?) -> (volume: Double, ef: Double) {
        let tEDV = ed.lvDiscML, tESV = es.lvDiscML
        let efTrue = 100 * (tEDV - tESV) / tEDV
        return (max(abs(edv - tEDV) / tEDV, abs(esv - tESV) / tESV), abs((ef ?? .nan) - efTrue))
    }

    /// Whether `lvErrors` are within the tolerances.
    public static func withinTolerances(_ e: (volume: Double, ef: Double)) -> Bool {
        e.volume < lvVolumeTolerance && e.ef < lvEFTolerance
    }

    public static func read(_ path: String) throws -> PhantomTruth {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONDecoder().decode(PhantomTruth.self, from: data)
    }
}

/// Writes synthetic cardiac cine MRI studies in the ACDC layout.
public enum PhantomGenerator {
    public static let version = "autosam-phantom 1"

    /// The ACDC group of patient n (1-based): the five groups in turn, as ACDC balances them.
    public static func group(ofPatient n: Int) -> PhantomGroup {
        PhantomGroup.allCases[(n - 1) % PhantomGroup.allCases.count]
    }

    /// The world placement of the stack: a double-oblique rotation, centred near the offset.
    static func geometry(_ p: PhantomParameters) -> VolumeGeometry {
        let (a, b, c) = (p.orientation[0], p.orientation[1], p.orientation[2])
        func rot(_ v: SIMD3<Double>) -> SIMD3<Double> {
            // R = Rz(c) * Ry(b) * Rx(a)
            let x1 = SIMD3(v.x, cos(a) * v.y - sin(a) * v.z, sin(a) * v.y + cos(a) * v.z)
            let x2 = SIMD3(cos(b) * x1.x + sin(b) * x1.z, x1.y, -sin(b) * x1.x + cos(b) * x1.z)
            return SIMD3(cos(c) * x2.x - sin(c) * x2.y, sin(c) * x2.x + cos(c) * x2.y, x2.z)
        }
        let dirs = [rot(SIMD3(1, 0, 0)), rot(SIMD3(0, 1, 0)), rot(SIMD3(0, 0, 1))]
        let spacing = SIMD3(p.pixelSpacing, p.pixelSpacing, p.sliceSpacing)
        let half = SIMD3(Double(p.nx - 1), Double(p.ny - 1), Double(p.nz - 1)) * spacing / 2
        let centre = SIMD3(p.worldOffset[0], p.worldOffset[1], p.worldOffset[2])
        let origin = centre - (dirs[0] * half.x + dirs[1] * half.y + dirs[2] * half.z)
        return VolumeGeometry(spacing: spacing, origin: origin, direction: dirs)
    }

    /// Generates patients `first ..< first + count` into `outDir`, in parallel over patients.
    /// The same seed gives the same files whatever the thread count.
    @discardableResult
    /// With `cine: false` only the ED and ES frames are rendered and no 4D file is written.
    public static func generate(
        into outDir: String, patients count: Int, seed: UInt64, first: Int = 1, cine: Bool = true
    ) throws -> [PhantomTruth] {
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        let results = ResultBox<PhantomTruth>(count: count)
        DispatchQueue.concurrentPerform(iterations: count) { n in
            results.set(n, Result { try writePatient(number: first + n, seed: seed, outDir: outDir, cine: cine) })
        }
        return try results.values()
    }

    /// The ground-truth label map of one frame (0-based) of patient n, without rendering or
    /// writing images: what `writePatient` writes as `_gt`.
    public static func groundTruth(patient n: Int, seed: UInt64, frame t: Int) -> LabelMap {
        let p = PhantomParameters.sample(seed: seed, patient: n, group: group(ofPatient: n))
        let renderer = PhantomRenderer(model: HeartModel(p), seed: seed, patient: n)
        var labels: [UInt8] = []
        labels.reserveCapacity(p.nx * p.ny * p.nz)
        for k in 0..<p.nz { labels += renderer.labels(renderer.classify(slice: k, frame: t)) }
        return LabelMap(shape: GridShape(p.nx, p.ny, p.nz), geometry: geometry(p), labels: labels)
    }

    /// The truth record of patient n without writing anything.
    public static func truth(patient n: Int, seed: UInt64) -> PhantomTruth {
        let p = PhantomParameters.sample(seed: seed, patient: n, group: group(ofPatient: n))
        return truth(id: String(format: "patient%03d", n), seed: seed, model: HeartModel(p))
    }

    static func truth(id: String, seed: UInt64, model: HeartModel) -> PhantomTruth {
        let p = model.p
        return PhantomTruth(
            generator: version, seed: seed, patient: id, group: p.group.rawValue, edFrame: 1,
            esFrame: p.esFrame + 1, sliceSpacingMM: p.sliceSpacing, pixelSpacingMM: p.pixelSpacing,
            frames: (0..<p.nt).map { model.volumes(frame: $0) }, parameters: p)
    }

    /// Generates one patient folder and returns its truth.
    public static func writePatient(number n: Int, seed: UInt64, outDir: String, cine writeCine: Bool = true) throws -> PhantomTruth {
        let id = String(format: "patient%03d", n)
        let p = PhantomParameters.sample(seed: seed, patient: n, group: group(ofPatient: n))
        let model = HeartModel(p)
        let renderer = PhantomRenderer(model: model, seed: seed, patient: n)
        let folder = outDir + "/" + id
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let geom = geometry(p)
        let plane = p.nx * p.ny, frameSize = plane * p.nz
        var cine = [Int16](repeating: 0, count: frameSize * p.nt)
        var gts: [Int: [UInt8]] = [:]
        let keyFrames = [0, p.esFrame]
        for t in 0..<p.nt where writeCine || keyFrames.contains(t) {
            var gt = keyFrames.contains(t) ? [UInt8](repeating: 0, count: frameSize) : []
            for k in 0..<p.nz {
                let tissues = renderer.classify(slice: k, frame: t)
                let img = renderer.image(tissues, slice: k, frame: t)
                cine.replaceSubrange((t * frameSize + k * plane)..<(t * frameSize + (k + 1) * plane), with: img)
                if !gt.isEmpty { gt.replaceSubrange((k * plane)..<((k + 1) * plane), with: renderer.labels(tissues)) }
            }
            if !gt.isEmpty { gts[t] = gt }
        }
        let timing = FrameTiming(frameInterval: p.frameIntervalMs)
        let cineVolume = Volume(
            shape: GridShape(p.nx, p.ny, p.nz, p.nt), geometry: geom, data: .int16(cine), timing: timing,
            descrip: "autosam phantom")
        if writeCine { try NIfTI.write(cineVolume, to: "\(folder)/\(id)_4d.nii.gz", compression: 1) }
        for t in keyFrames {
            let name = ACDCPatient.frameName(id, frame: t + 1)
            let frame = Volume(
                shape: GridShape(p.nx, p.ny, p.nz), geometry: geom,
                data: .int16(Array(cine[(t * frameSize)..<((t + 1) * frameSize)])), descrip: "autosam phantom")
            try NIfTI.write(frame, to: "\(folder)/\(name).nii.gz")
            let labels = LabelMap(shape: GridShape(p.nx, p.ny, p.nz), geometry: geom, labels: gts[t]!)
            try NIfTI.write(labels, to: "\(folder)/\(name)_gt.nii.gz")
        }
        let info = ACDCInfo(
            ed: 1, es: p.esFrame + 1, group: p.group.rawValue, heightCm: p.heightCm, weightKg: p.weightKg,
            frameCount: p.nt)
        try AtomicFile.write(info.text, to: folder + "/Info.cfg")
        let truth = truth(id: id, seed: seed, model: model)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try enc.encode(truth), to: folder + "/phantom_truth.json")
        return truth
    }
}

/// Collects per-index results from concurrent work.
final class ResultBox<T>: @unchecked Sendable {
    private var items: [Result<T, Error>?]
    private let lock = NSLock()

    init(count: Int) { items = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ r: Result<T, Error>) {
        lock.lock()
        items[i] = r
        lock.unlock()
    }

    func values() throws -> [T] { try items.map { try $0!.get() } }
}
