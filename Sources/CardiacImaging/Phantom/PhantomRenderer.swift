import Foundation

/// Turns a phantom's heart model into MR-like short-axis images and their labels.
///
/// Each pixel centre is classified into a tissue (blood pools, myocardium, RV wall, fat,
/// lungs, liver, chest wall, ...). Tissues give intensities (per-patient contrast); then a
/// Gaussian blur stands in for partial volume, a smooth multiplicative bias field is applied,
/// and Rician noise is added. Labels come from the same classification: LV cavity (with the
/// papillary muscles) 3, myocardium 2, RV cavity 1, everything else 0.
struct PhantomRenderer {
    enum Tissue: UInt8 {
        case air, soft, subcutaneousFat, muscle, lung, liver, spine, aorta
        case lvBlood, papillary, myo, rvBlood, rvWall, epicardialFat, atrium

        var label: UInt8 {
            switch self {
            case .lvBlood, .papillary: 3
            case .myo: 2
            case .rvBlood: 1
            default: 0
            }
        }
    }

    let model: HeartModel
    var p: PhantomParameters { model.p }
    let seed: UInt64
    let patient: Int
    /// Intensity of each tissue (relative to blood = 1), drawn once per patient.
    let intensities: [Float]

    init(model: HeartModel, seed: UInt64, patient: Int) {
        self.model = model
        self.seed = seed
        self.patient = patient
        var r = SeededRandom(seed: seed, streams: UInt64(patient), 2)
        let p = model.p
        var table = [Float](repeating: 0, count: 15)
        func set(_ t: Tissue, _ v: Double) { table[Int(t.rawValue)] = Float(v) }
        set(.air, 0.01)
        set(.soft, r.uniform(0.3, 0.42))
        set(.subcutaneousFat, p.fatIntensity)
        set(.muscle, r.uniform(0.22, 0.34))
        set(.lung, r.uniform(0.03, 0.08))
        set(.liver, r.uniform(0.38, 0.52))
        set(.spine, r.uniform(0.4, 0.6))
        set(.aorta, r.uniform(0.85, 1.05))
        set(.lvBlood, p.bloodIntensity)
        set(.papillary, p.myoIntensity * r.uniform(0.9, 1.2))
        set(.myo, p.myoIntensity)
        set(.rvBlood, p.bloodIntensity * r.uniform(0.88, 1.02))
        set(.rvWall, p.myoIntensity * r.uniform(0.95, 1.3))
        set(.epicardialFat, p.fatIntensity * r.uniform(0.9, 1.05))
        set(.atrium, p.bloodIntensity * r.uniform(0.85, 1.0))
        intensities = table
    }

    /// Tissue at each pixel of slice k, frame t (nx * ny, i fastest).
    func classify(slice k: Int, frame t: Int) -> [Tissue] {
        let sl = model.slice(position: model.slicePosition(k), frame: t)
        let nx = p.nx, ny = p.ny, dx = p.pixelSpacing
        let cosA = cos(p.inPlaneRotation), sinA = sin(p.inPlaneRotation)
        // Anatomy around the heart, in heart coordinates: the RV points anteriorly-right.
        let ant = p.rvDirection + 0.5
        let ax = cos(ant), ay = sin(ant)  // anterior
        let lx = -ay, ly = ax  // patient's left
        let bodyC = (x: p.bodyOffset[0] * ax + p.bodyOffset[1] * lx, y: p.bodyOffset[0] * ay + p.bodyOffset[1] * ly)
        let bodyA = p.bodySemiAxes[0], bodyB = p.bodySemiAxes[1]  // left-right, antero-posterior
        let depth = sl.depth
        let apical = depth > 0.55 * sl.cavityLength
        let papillaryLevel = depth > 0.25 * sl.cavityLength && depth < 0.8 * sl.cavityLength
        var out = [Tissue](repeating: .air, count: nx * ny)
        for j in 0..<ny {
            for i in 0..<nx {
                let px = Double(i) * dx - p.centerX, py = Double(j) * dx - p.centerY
                // Image -> heart coordinates (undo the in-plane rotation).
                let hx = cosA * px + sinA * py, hy = -sinA * px + cosA * py
                let r = (hx * hx + hy * hy).squareRoot()
                let b = HeartModel.Slice.sector(ofAngle: atan2(hy, hx))
                let allowed = r >= sl.cutLo[b] && r < sl.cutHi[b]
                let rvAllowed = r >= sl.rvCutLo[b] && r < sl.rvCutHi[b]
                var tissue: Tissue
                if r < sl.rv[b] || r < sl.epi[b] {
                    if r >= sl.epi[b] && rvAllowed {
                        tissue = .rvBlood
                    } else if !allowed {
                        tissue = .atrium
                    } else if r < sl.endo[b] {
                        tissue = .lvBlood
                        if papillaryLevel {
                            for (n, ang) in p.papillaryAngles.enumerated() {
                                let a = p.rvDirection + ang
                                let b2 = HeartModel.Slice.sector(ofAngle: a)
                                let rr = sl.endo[b2] * (n == 0 ? 0.62 : 0.68)
                                let ddx = hx - rr * cos(a), ddy = hy - rr * sin(a)
                                if ddx * ddx + ddy * ddy < p.papillaryRadius * p.papillaryRadius {
                                    tissue = .papillary
                                }
                            }
                        }
                    } else if r < sl.epi[b] {
                        tissue = .myo
                    } else {
                        tissue = .rvBlood
                    }
                } else if r < sl.rv[b] + 2.5 && sl.rv[b] > sl.epi[b] + 0.5 && rvAllowed {
                    tissue = .rvWall
                } else {
                    // Outside the heart.
                    let ox = hx - bodyC.x, oy = hy - bodyC.y
                    let lr = ox * lx + oy * ly, ap = ox * ax + oy * ay  // left-right, anterior
                    let e = (lr / bodyA) * (lr / bodyA) + (ap / bodyB) * (ap / bodyB)
                    if e > 1 {
                        tissue = .air
                    } else if e > 0.82 {
                        tissue = .subcutaneousFat
                    } else if e > 0.7 {
                        tissue = .muscle
                    } else if r < sl.epi[b] + 3.5 && depth > 0
                        && cos(2 * (Double(b) * 2 * Double.pi / Double(HeartModel.bins) - p.rvDirection)) > 0.1
                    {
                        // Epicardial fat in the grooves (two opposite sectors).
                        tissue = .epicardialFat
                    } else {
                        tissue = .soft
                        // Spine and descending aorta posteriorly.
                        let sx = lr, sy = ap + 0.72 * bodyB
                        if sx * sx + sy * sy < 15 * 15 { tissue = .spine }
                        let aox = lr - 22, aoy = ap + 0.52 * bodyB
                        if aox * aox + aoy * aoy < 11 * 11 { tissue = .aorta }
                        // Lungs either side of the heart.
                        for side in [-1.0, 1.0] {
                            let cx = side * 0.5 * bodyA, cy = -0.05 * bodyB
                            let ex = (lr - cx) / (0.36 * bodyA), ey = (ap - cy) / (0.62 * bodyB)
                            if ex * ex + ey * ey < 1 && r > sl.rv[b] + 6 { tissue = .lung }
                        }
                        // Liver under the heart at apical levels, on the patient's right.
                        if apical {
                            let ex = (lr + 0.35 * bodyA) / (0.45 * bodyA), ey = (ap + 0.1 * bodyB) / (0.7 * bodyB)
                            if ex * ex + ey * ey < 1 && r > sl.epi[b] + 5 { tissue = .liver }
                        }
                    }
                }
                out[j * nx + i] = tissue
            }
        }
        return out
    }

    /// Ground-truth labels of a slice.
    func labels(_ tissues: [Tissue]) -> [UInt8] { tissues.map(\.label) }

    /// MR-like intensities (int16 after scaling) of a slice.
    func image(_ tissues: [Tissue], slice k: Int, frame t: Int) -> [Int16] {
        let nx = p.nx, ny = p.ny
        var img = tissues.map { intensities[Int($0.rawValue)] }
        img = gaussianBlur(img, width: nx, height: ny, sigma: p.blurSigmaPixels)
        // Smooth bias field over the field of view, the same for all slices and frames.
        let c = p.biasCoefficients
        var rng = SeededRandom(seed: seed, streams: UInt64(patient), 3, UInt64(t), UInt64(k))
        let sigma = p.noiseSigma * p.bloodIntensity
        var out = [Int16](repeating: 0, count: nx * ny)
        let scale = p.intensityScale
        for j in 0..<ny {
            let v = 2 * Double(j) / Double(ny - 1) - 1
            for i in 0..<nx {
                let u = 2 * Double(i) / Double(nx - 1) - 1
                let bias = exp(c[0] * u + c[1] * v + c[2] * u * v + c[3] * (u * u - 0.33) + c[4] * (v * v - 0.33))
                let clean = Double(img[j * nx + i]) * bias
                // Rician: magnitude of a complex signal with Gaussian noise on both channels.
                let re = clean + sigma * rng.gaussian(), im = sigma * rng.gaussian()
                let mag = (re * re + im * im).squareRoot() * scale
                out[j * nx + i] = Int16(clamping: Int(mag.rounded()))
            }
        }
        return out
    }

    /// Separable Gaussian blur with clamped edges.
    func gaussianBlur(_ img: [Float], width: Int, height: Int, sigma: Double) -> [Float] {
        let radius = max(1, Int((3 * sigma).rounded(.up)))
        var kernel = (-radius...radius).map { Float(exp(-Double($0 * $0) / (2 * sigma * sigma))) }
        let sum = kernel.reduce(0, +)
        kernel = kernel.map { $0 / sum }
        var tmp = [Float](repeating: 0, count: img.count)
        var out = [Float](repeating: 0, count: img.count)
        for j in 0..<height {
            for i in 0..<width {
                var s: Float = 0
                for (n, w) in kernel.enumerated() {
                    let x = min(width - 1, max(0, i + n - radius))
                    s += w * img[j * width + x]
                }
                tmp[j * width + i] = s
            }
        }
        for j in 0..<height {
            for i in 0..<width {
                var s: Float = 0
                for (n, w) in kernel.enumerated() {
                    let y = min(height - 1, max(0, j + n - radius))
                    s += w * tmp[y * width + i]
                }
                out[j * width + i] = s
            }
        }
        return out
    }
}
