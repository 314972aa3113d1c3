import Foundation

/// The physiology groups of the phantom, named as ACDC names its groups.
public enum PhantomGroup: String, CaseIterable, Codable, Sendable {
    case normal = "NOR"
    case dilated = "DCM"
    case hypertrophic = "HCM"
    case abnormalRV = "RV"
    case infarct = "MINF"
}

/// Everything that defines one synthetic patient. Drawn from a seed by `sample`; every
/// length is in millimetres, every angle in radians.
public struct PhantomParameters: Codable, Sendable {
    public var group: PhantomGroup
    public var heightCm: Double
    public var weightKg: Double

    // Acquisition
    public var nx: Int, ny: Int, nz: Int, nt: Int
    public var pixelSpacing: Double
    public var sliceSpacing: Double
    /// Long-axis position of slice 0 relative to the ED valve plane at the LV centre.
    public var firstSlicePosition: Double
    public var esFrame: Int  // 0-based
    public var frameIntervalMs: Double
    /// Euler angles of the double-oblique slice orientation in the world.
    public var orientation: [Double]
    public var worldOffset: [Double]

    // Heart pose inside the image plane
    public var centerX: Double, centerY: Double
    public var inPlaneRotation: Double

    // LV
    public var lvRadius: Double  // endocardial semi-major axis at the base, ED
    public var lvEllipticity: Double  // minor / major
    public var cavityLength: Double  // base to cavity apex, ED
    public var wallThickness: Double  // ED
    public var septalExtra: Double  // extra relative thickness at the septum (HCM)
    public var apexCap: Double  // myocardium beyond the cavity apex
    public var esScale: Double  // endocardial radius factor at ES
    public var basalDescent: Double  // base moves towards the apex by this at ES
    // Infarct-like thinning
    public var infarctAngle: Double, infarctWidth: Double, infarctThinning: Double

    // RV
    public var rvDirection: Double
    public var rvSpan: Double
    public var rvThickness: Double
    public var rvLength: Double
    public var rvEsScale: Double

    // Valve plane
    public var valveTiltDirection: Double
    public var valveTilt: Double
    public var valveOffset: Double
    /// How far the RV's outflow reaches above the LV's valve plane (its own valve plane sits
    /// this much higher, towards the pulmonary valve): basal slices show RV above the LV.
    public var rvOutflowRise: Double

    // Papillary muscles
    public var papillaryAngles: [Double]
    public var papillaryRadius: Double

    // Appearance
    public var intensityScale: Double
    public var bloodIntensity: Double
    public var myoIntensity: Double
    public var fatIntensity: Double
    public var noiseSigma: Double  // relative to blood
    public var blurSigmaPixels: Double
    public var biasCoefficients: [Double]
    public var bodySemiAxes: [Double]
    public var bodyOffset: [Double]

    /// Draws one patient's parameters.
    public static func sample(seed: UInt64, patient: Int, group: PhantomGroup) -> PhantomParameters {
        var r = SeededRandom(seed: seed, streams: UInt64(patient), 1)
        let pixel = r.uniform(1.2, 1.9)
        // The field of view holds the whole chest: at least 260 mm on both axes.
        let minMatrix = max(160, Int((260 / pixel).rounded(.up)))
        let nx = r.int(min(minMatrix, 256), 256)
        let ny = r.int(min(minMatrix, 256), 256)
        let sliceSpacing = r.uniform(6, 10)
        let nz = min(12, max(6, Int((85 / sliceSpacing).rounded()) + 1))
        let nt = r.int(10, 30)
        let firstSlice = r.uniform(-4, 4)
        let gap = r.uniform(0.15, 0.85)
        let cavityLength = (Double(nz - 1) - gap) * sliceSpacing + firstSlice
        let male = r.unit() < 0.5
        let height = male ? r.uniform(165, 195) : r.uniform(150, 180)
        let weight = male ? r.uniform(60, 110) : r.uniform(45, 95)

        var p = PhantomParameters(
            group: group, heightCm: height, weightKg: weight,
            nx: nx, ny: ny, nz: nz, nt: nt, pixelSpacing: pixel, sliceSpacing: sliceSpacing,
            firstSlicePosition: firstSlice,
            esFrame: max(2, Int((Double(nt) * r.uniform(0.3, 0.4)).rounded())),
            frameIntervalMs: r.uniform(800, 1100) / Double(nt),
            orientation: [r.uniform(-0.6, 0.6), r.uniform(-0.8, 0.8), r.uniform(-Double.pi, Double.pi)],
            worldOffset: [r.uniform(-40, 40), r.uniform(-40, 40), r.uniform(-40, 40)],
            centerX: 0, centerY: 0, inPlaneRotation: r.uniform(0, 2 * Double.pi),
            lvRadius: r.uniform(24, 29), lvEllipticity: r.uniform(0.82, 0.98),
            cavityLength: cavityLength, wallThickness: r.uniform(7, 10), septalExtra: 0,
            apexCap: r.uniform(5, 9), esScale: 0.62, basalDescent: r.uniform(6, 12),
            infarctAngle: 0, infarctWidth: 0, infarctThinning: 0,
            rvDirection: r.uniform(-0.3, 0.3), rvSpan: r.uniform(2.3, 2.8),
            rvThickness: r.uniform(24, 32), rvLength: cavityLength * r.uniform(0.6, 0.8),
            rvEsScale: r.uniform(0.45, 0.6),
            valveTiltDirection: r.uniform(0, 2 * Double.pi), valveTilt: r.uniform(0.25, 0.5),
            valveOffset: r.uniform(0, 8), rvOutflowRise: 0,
            papillaryAngles: [r.uniform(2.3, 2.8), r.uniform(3.5, 4.0)],
            papillaryRadius: r.uniform(3.5, 5.5),
            intensityScale: r.uniform(250, 1400), bloodIntensity: 1,
            myoIntensity: r.uniform(0.2, 0.45), fatIntensity: r.uniform(0.7, 0.95),
            noiseSigma: r.uniform(0.02, 0.06), blurSigmaPixels: r.uniform(0.45, 0.8),
            biasCoefficients: (0..<5).map { _ in r.uniform(-0.25, 0.25) },
            bodySemiAxes: [r.uniform(135, 170), r.uniform(95, 125)],
            bodyOffset: [r.uniform(-35, -15), r.uniform(-10, 10)])

        switch group {
        case .normal:
            p.esScale = r.uniform(0.58, 0.68)
        case .dilated:
            p.lvRadius = r.uniform(33, 40)
            p.wallThickness = r.uniform(5.5, 8)
            p.esScale = r.uniform(0.8, 0.9)
            p.basalDescent = r.uniform(2, 5)
        case .hypertrophic:
            p.lvRadius = r.uniform(18, 23)
            p.wallThickness = r.uniform(13, 18)
            p.septalExtra = r.uniform(0.2, 0.6)
            p.esScale = r.uniform(0.45, 0.58)
        case .abnormalRV:
            p.rvThickness = r.uniform(36, 46)
            p.rvSpan = r.uniform(2.7, 3.1)
            p.rvEsScale = r.uniform(0.84, 0.95)
            p.rvLength = cavityLength * r.uniform(0.75, 0.9)
        case .infarct:
            p.esScale = r.uniform(0.72, 0.82)
            p.infarctAngle = r.uniform(0, 2 * Double.pi)
            p.infarctWidth = r.uniform(0.8, 1.6)
            p.infarctThinning = r.uniform(0.45, 0.7)
            p.basalDescent = r.uniform(4, 8)
        }
        // Keep the whole heart (LV, RV and a margin) inside the field of view.
        let extent = p.lvRadius + p.wallThickness * (1 + p.septalExtra) + p.rvThickness + 12
        let fovX = Double(nx) * pixel, fovY = Double(ny) * pixel
        let slackX = max(0, fovX / 2 - extent), slackY = max(0, fovY / 2 - extent)
        p.centerX = fovX / 2 + r.uniform(-0.5, 0.5) * slackX
        p.centerY = fovY / 2 + r.uniform(-0.5, 0.5) * slackY
        // Drawn last so that the draws above stay as they were. A stack also covers what
        // lies beyond the ventricles, as clinical stacks do: up to two slices above the base
        // (atria, aortic root, the RV outflow) and up to two below the apex (no heart).
        p.rvOutflowRise = r.uniform(6, 20)
        let above = r.int(0, 2), below = r.int(0, 2)
        p.firstSlicePosition -= Double(above) * sliceSpacing
        p.nz += above + below
        // Wider shapes than the groups' own ranges, so that a head does not learn one shape.
        p.lvEllipticity = min(1, p.lvEllipticity * r.uniform(0.88, 1.04))
        p.rvThickness *= r.uniform(0.8, 1.25)
        p.rvSpan = min(3.3, p.rvSpan * r.uniform(0.9, 1.15))
        p.rvDirection += r.uniform(-0.25, 0.25)
        return p
    }
}
