import Foundation

/// The heart of one phantom patient as continuous geometry.
///
/// In the short-axis plane at long-axis position `s` and cardiac phase `t`, each structure is
/// described in polar coordinates about the LV centre, on `bins` equal angular sectors: the
/// endocardial radius, the epicardial radius and the outer radius of the RV cavity, plus the
/// radial interval that lies on the ventricular side of the (tilted) valve plane. Shapes are
/// exactly those sector-wise radii, so an area is an exact sum over sectors of
/// (r_hi^2 - r_lo^2) / 2 * dtheta: the "analytic" truth that label maps are checked against.
public struct HeartModel: Sendable {
    public static let bins = 4096
    public let p: PhantomParameters
    // Per-sector constants, computed once: the LV ellipse's radius factor, the wall
    // thickness factor, the RV crescent's profile and the valve plane's direction cosine.
    private let ellipseTable: [Double]
    private let wallTable: [Double]
    private let rvBumpTable: [Double]
    private let valveCosTable: [Double]

    public init(_ p: PhantomParameters) {
        self.p = p
        let thetas = (0..<HeartModel.bins).map { (Double($0) + 0.5) * 2 * Double.pi / Double(HeartModel.bins) }
        ellipseTable = thetas.map { theta in
            let c = cos(theta), s = sin(theta) / p.lvEllipticity
            return 1 / (c * c + s * s).squareRoot()
        }
        wallTable = thetas.map { HeartModel.wallFactor($0, p) }
        rvBumpTable = thetas.map { theta in
            let u = HeartModel.angleDiff(theta, p.rvDirection) / p.rvSpan + 0.5
            return u > 0 && u < 1 ? pow(sin(Double.pi * u), 0.6) : 0
        }
        valveCosTable = thetas.map { cos($0 - p.valveTiltDirection) }
    }

    /// Contraction in [0, 1]: 0 at ED (frame 0), 1 at ES, back towards 0 at the cycle's end.
    public func contraction(frame t: Int) -> Double {
        let te = Double(p.esFrame), n = Double(p.nt), x = Double(t)
        if x <= te { return (1 - cos(Double.pi * x / te)) / 2 }
        return (1 + cos(Double.pi * (x - te) / (n - te))) / 2
    }

    /// Long-axis position of slice k.
    public func slicePosition(_ k: Int) -> Double { p.firstSlicePosition + Double(k) * p.sliceSpacing }

    /// Radii of one sector at one slice and phase.
    public struct Slice: Sendable {
        public var endo: [Double]
        public var epi: [Double]
        public var rv: [Double]
        /// Allowed radial interval (ventricle side of the valve plane) per sector.
        public var cutLo: [Double]
        public var cutHi: [Double]
        /// The same for the RV, whose outflow reaches above the LV's valve plane.
        public var rvCutLo: [Double]
        public var rvCutHi: [Double]
        /// Long-axis position relative to the current base (for papillary muscles etc).
        public var depth: Double
        public var cavityLength: Double

        @inline(__always) public static func sector(ofAngle theta: Double) -> Int {
            var b = Int((theta * Double(HeartModel.bins) / (2 * Double.pi)).rounded(.down))
            b %= HeartModel.bins
            if b < 0 { b += HeartModel.bins }
            return b
        }

        /// Area (mm^2) of the radial band [lo(b), hi(b)) clipped to the ventricle side.
        func area(_ lo: [Double], _ hi: [Double], rv: Bool = false) -> Double {
            var sum = 0.0
            let cutLo = rv ? rvCutLo : cutLo, cutHi = rv ? rvCutHi : cutHi
            for b in 0..<HeartModel.bins {
                let a = max(lo[b], cutLo[b]), c = min(hi[b], cutHi[b])
                if c > a { sum += c * c - a * a }
            }
            return sum * 0.5 * (2 * Double.pi / Double(HeartModel.bins))
        }

        public var lvArea: Double { area([Double](repeating: 0, count: HeartModel.bins), endo) }
        public var myoArea: Double { area(endo, epi) }
        public var rvArea: Double { area(epi, rv, rv: true) }
    }

    /// Smallest signed angle between two directions.
    static func angleDiff(_ a: Double, _ b: Double) -> Double {
        var d = (a - b).truncatingRemainder(dividingBy: 2 * Double.pi)
        if d > Double.pi { d -= 2 * Double.pi }
        if d < -Double.pi { d += 2 * Double.pi }
        return d
    }

    /// Fraction of the ED wall thickness kept at angle theta (infarct-like thinning), and the
    /// relative extra thickness (septal hypertrophy, centred on the RV side).
    private static func wallFactor(_ theta: Double, _ p: PhantomParameters) -> Double {
        var f = 1.0
        if p.septalExtra > 0 {
            let d = angleDiff(theta, p.rvDirection)
            f *= 1 + p.septalExtra * max(0, cos(d))
        }
        if p.infarctThinning > 0 {
            let d = abs(angleDiff(theta, p.infarctAngle))
            if d < p.infarctWidth / 2 {
                f *= 1 - p.infarctThinning * cos(Double.pi * d / p.infarctWidth)
            }
        }
        return f
    }

    /// The profile of a half-ellipsoid: 1 at and above the base, 0 at length L below it.
    private func profile(_ depth: Double, length: Double) -> Double {
        guard depth > 0 else { return 1 }
        let x = depth / length
        return x >= 1 ? 0 : (1 - x * x).squareRoot()
    }

    /// Endocardial and epicardial radii of sector b at ED (base at its ED position).
    private func edRadii(sector b: Int, depth: Double) -> (endo: Double, epi: Double) {
        let endo = p.lvRadius * profile(depth, length: p.cavityLength) * ellipseTable[b]
        let w = p.wallThickness * wallTable[b]
        let epi: Double
        if depth <= p.cavityLength {
            epi = endo + w
        } else {
            epi = w * profile(depth - p.cavityLength, length: p.apexCap)
        }
        return (endo, epi)
    }

    public func slice(position s: Double, frame t: Int) -> Slice {
        let n = HeartModel.bins
        let c = contraction(frame: t)
        let base = p.basalDescent * c
        let depth = s - base
        let endoScale = 1 - (1 - p.esScale) * c
        let rvScale = 1 - (1 - p.rvEsScale) * c
        // The apex stays put while the base descends: the cavity shortens.
        let length = p.cavityLength - base
        let rvProfile = profile(depth, length: p.rvLength - base)
        // Ventricle side of the valve plane: u . x <= d along direction u.
        let d = depth / tan(p.valveTilt) + p.valveOffset
        let dRV = (depth + p.rvOutflowRise) / tan(p.valveTilt) + p.valveOffset
        let zeros = [Double](repeating: 0, count: n)
        var out = Slice(
            endo: zeros, epi: zeros, rv: zeros, cutLo: zeros, cutHi: zeros, rvCutLo: zeros, rvCutHi: zeros,
            depth: depth, cavityLength: length)
        /// The radial interval of sector b on the ventricle side of a plane at distance d.
        func cut(_ d: Double, _ cu: Double) -> (Double, Double) {
            if cu > 1e-12 { return (0, d > 0 ? d / cu : 0) }
            if cu < -1e-12 { return (d >= 0 ? 0 : d / cu, .infinity) }
            return (0, d >= 0 ? .infinity : 0)
        }
        let endoProfile = p.lvRadius * profile(depth, length: length) * endoScale
        let rvHeight = p.rvThickness * rvProfile * rvScale
        for b in 0..<n {
            // ED radii at the same position: the myocardium is incompressible, so
            // r_epi^2 - r_endo^2 is kept from ED and the wall thickens as the cavity shrinks.
            let ed = edRadii(sector: b, depth: s)
            let ringArea = ed.epi * ed.epi - ed.endo * ed.endo
            let endo = endoProfile * ellipseTable[b]
            let epi = (endo * endo + ringArea).squareRoot()
            out.endo[b] = endo
            out.epi[b] = epi
            out.rv[b] = epi + rvHeight * rvBumpTable[b]
            (out.cutLo[b], out.cutHi[b]) = cut(d, valveCosTable[b])
            (out.rvCutLo[b], out.rvCutHi[b]) = cut(dRV, valveCosTable[b])
        }
        return out
    }

    /// Structure volumes (mL) of one frame, two ways: the method of discs at the slice
    /// positions (what a perfect segmentation of the stack measures) and the continuous
    /// integral along the long axis.
    public struct FrameVolumes: Codable, Sendable {
        public var frame: Int  // 1-based, as ACDC counts
        public var lvDiscML: Double, rvDiscML: Double, myoDiscML: Double
        public var lvContinuousML: Double, rvContinuousML: Double, myoContinuousML: Double
        public var lvSliceAreasMM2: [Double]
    }

    public func volumes(frame t: Int) -> FrameVolumes {
        var lv = 0.0, rv = 0.0, myo = 0.0, areas: [Double] = []
        for k in 0..<p.nz {
            let sl = slice(position: slicePosition(k), frame: t)
            areas.append(sl.lvArea)
            lv += sl.lvArea
            rv += sl.rvArea
            myo += sl.myoArea
        }
        let h = p.sliceSpacing / 1000
        // Continuous: trapezoid rule over the whole heart with 0.5 mm steps.
        let step = 0.5
        let start = -(p.valveOffset * tan(p.valveTilt) + p.rvOutflowRise) - 60, end = p.cavityLength + p.apexCap + 1
        var clv = 0.0, crv = 0.0, cmyo = 0.0
        var s = start
        while s <= end {
            let sl = slice(position: s, frame: t)
            clv += sl.lvArea
            crv += sl.rvArea
            cmyo += sl.myoArea
            s += step
        }
        let hc = step / 1000
        return FrameVolumes(
            frame: t + 1, lvDiscML: lv * h, rvDiscML: rv * h, myoDiscML: myo * h,
            lvContinuousML: clv * hc, rvContinuousML: crv * hc, myoContinuousML: cmyo * hc,
            lvSliceAreasMM2: areas)
    }
}
