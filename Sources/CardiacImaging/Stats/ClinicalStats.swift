/// Clinical measures from segmentations: structure volumes, ventricular function (EDV, ESV,
/// SV, EF), LV mass, per-slice areas, body surface area and indexed values, ED/ES selection.
///
/// Conventions: volumes in mL (voxel count x `voxelVolume` / 1000), areas in mm^2 (and cm^2),
/// mass in g with a myocardial density of 1.05 g/mL, BSA in m^2 by Mosteller. Short-axis
/// slices are the k index (third grid axis). EF is nil when EDV is 0; indexed values are nil
/// unless both height and weight are given.
public enum ClinicalStats {
    /// Myocardial tissue density, g/mL.
    public static let myocardialDensity = 1.05

    /// LV, RV and myocardial volumes of one map (labels above 3 are ignored).
    public static func volumes(_ map: LabelMap) -> StructureVolumes {
        let h = map.histogram()
        return StructureVolumes(
            lvVoxels: h[Int(CardiacLabel.lv.rawValue)], rvVoxels: h[Int(CardiacLabel.rv.rawValue)],
            myoVoxels: h[Int(CardiacLabel.myo.rawValue)], voxelVolume: map.geometry.voxelVolume)
    }

    /// In-plane area of one voxel in mm^2: |column i x column j| of the affine.
    public static func pixelArea(_ geometry: VolumeGeometry) -> Double {
        geometry.affine.column3(0).cross(geometry.affine.column3(1)).length
    }

    /// Areas of LV, RV and myocardium on each slice k, in k order.
    public static func sliceAreas(_ map: LabelMap) -> [SliceAreas] {
        let plane = map.shape.nx * map.shape.ny
        let px = pixelArea(map.geometry)
        return (0..<map.shape.nz).map { k in
            var counts = [0, 0, 0, 0]
            for v in map.labels[(k * plane)..<((k + 1) * plane)] where v <= 3 { counts[Int(v)] += 1 }
            return SliceAreas(
                slice: k, lvMm2: Double(counts[3]) * px, rvMm2: Double(counts[1]) * px,
                myoMm2: Double(counts[2]) * px)
        }
    }

    /// Body surface area by Mosteller, sqrt(height_cm * weight_kg / 3600), in m^2.
    /// Throws `invalidArgument` unless both are finite and positive.
    public static func bodySurfaceArea(heightCm: Double, weightKg: Double) throws -> Double {
        guard heightCm.isFinite, heightCm > 0, weightKg.isFinite, weightKg > 0 else {
            throw ImagingError.invalidArgument(
                "height \(heightCm) cm and weight \(weightKg) kg must be positive")
        }
        return (heightCm * weightKg / 3600).squareRoot()
    }

    /// ED = index of the largest value, ES = index of the smallest; ties go to the earliest
    /// frame. Throws `invalidArgument` for an empty curve or non-finite values.
    public static func selectPhases(lvVolumes: [Double]) throws -> (ed: Int, es: Int) {
        guard !lvVolumes.isEmpty else { throw ImagingError.invalidArgument("no frames") }
        guard lvVolumes.allSatisfy(\.isFinite) else {
            throw ImagingError.invalidArgument("non-finite LV volume in the curve")
        }
        var ed = 0, es = 0
        for t in lvVolumes.indices.dropFirst() {
            if lvVolumes[t] > lvVolumes[ed] { ed = t }
            if lvVolumes[t] < lvVolumes[es] { es = t }
        }
        return (ed, es)
    }

    /// The LV volume curve of a segmented cine (one map per frame) and its ED / ES frames.
    public static func selectPhases(frames: [LabelMap]) throws -> PhaseSelection {
        let curve = frames.map { volumes($0).lvCavity }
        let (ed, es) = try selectPhases(lvVolumes: curve)
        return PhaseSelection(lvVolumes: curve, edFrame: ed, esFrame: es)
    }

    /// Function measures of an ED / ES pair. Height and weight are optional; BSA and indexed
    /// values are given only when both are. Throws `gridMismatch` unless both maps share a
    /// shape and affines within `tolerance` mm, `invalidArgument` for a non-positive height
    /// or weight.
    public static func report(
        ed: LabelMap, es: LabelMap, heightCm: Double? = nil, weightKg: Double? = nil,
        subject: String? = nil, edFrame: Int? = nil, esFrame: Int? = nil, tolerance: Double = 1e-4
    ) throws -> FunctionReport {
        guard ed.shape == es.shape else {
            throw ImagingError.gridMismatch("ED map is \(ed.shape) but the ES map is \(es.shape)")
        }
        guard ed.geometry.matches(es.geometry, tolerance: tolerance) else {
            throw ImagingError.gridMismatch("ED and ES maps have different affines")
        }
        var bsa: Double?
        if let heightCm, let weightKg {
            bsa = try bodySurfaceArea(heightCm: heightCm, weightKg: weightKg)
        } else if let v = heightCm ?? weightKg, !(v.isFinite && v > 0) {
            throw ImagingError.invalidArgument("height and weight must be positive")
        }
        let edVol = volumes(ed), esVol = volumes(es)
        let lv = VentricleFunction(edv: edVol.lvCavity, esv: esVol.lvCavity, bsa: bsa)
        let rv = VentricleFunction(edv: edVol.rvCavity, esv: esVol.rvCavity, bsa: bsa)
        let mass = edVol.myocardium * myocardialDensity
        let areasED = sliceAreas(ed), areasES = sliceAreas(es)

        var flags: [QCFlag] = []
        if edVol.lvVoxels == 0 { flags.append(.noLVAtED) }
        if esVol.lvVoxels == 0 { flags.append(.noLVAtES) }
        if edVol.rvVoxels == 0 { flags.append(.noRVAtED) }
        if esVol.rvVoxels == 0 { flags.append(.noRVAtES) }
        if edVol.myoVoxels == 0 { flags.append(.noMyoAtED) }
        if esVol.lvVoxels > edVol.lvVoxels { flags.append(.lvESVLargerThanEDV) }
        if esVol.rvVoxels > edVol.rvVoxels { flags.append(.rvESVLargerThanEDV) }
        if let ef = lv.ef, !(0...100).contains(ef) { flags.append(.lvEFOutOfRange) }
        if let ef = rv.ef, !(0...100).contains(ef) { flags.append(.rvEFOutOfRange) }
        if areasED.contains(where: { $0.lvMm2 > 0 && $0.myoMm2 == 0 }) { flags.append(.lvSliceWithoutMyo) }
        if ed.maxLabel > 3 || es.maxLabel > 3 { flags.append(.unexpectedLabels) }
        if let edFrame, let esFrame, edFrame == esFrame { flags.append(.sameEDAndESFrame) }

        let sp = ed.geometry.spacing
        return FunctionReport(
            subject: subject, edFrame: edFrame, esFrame: esFrame, heightCm: heightCm,
            weightKg: weightKg, bsa: bsa, lv: lv, rv: rv, lvMass: mass,
            lvMassIndex: bsa.map { mass / $0 }, ed: edVol, es: esVol, sliceAreasED: areasED,
            sliceAreasES: areasES, flags: flags, spacing: [sp.x, sp.y, sp.z])
    }

    /// Picks ED and ES from a segmented cine (see `selectPhases(frames:)`) and reports on them.
    public static func report(
        frames: [LabelMap], heightCm: Double? = nil, weightKg: Double? = nil,
        subject: String? = nil, tolerance: Double = 1e-4
    ) throws -> (FunctionReport, PhaseSelection) {
        let phases = try selectPhases(frames: frames)
        let r = try report(
            ed: frames[phases.edFrame], es: frames[phases.esFrame], heightCm: heightCm,
            weightKg: weightKg, subject: subject, edFrame: phases.edFrame, esFrame: phases.esFrame,
            tolerance: tolerance)
        return (r, phases)
    }
}
