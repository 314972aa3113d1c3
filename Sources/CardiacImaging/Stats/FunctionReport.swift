import Foundation

/// Cavity and myocardial volumes of one label map, in mL (voxel count x voxel volume / 1000).
public struct StructureVolumes: Codable, Equatable, Sendable {
    /// LV blood pool (label 3).
    public var lvCavity: Double
    /// RV blood pool (label 1).
    public var rvCavity: Double
    /// LV myocardium (label 2).
    public var myocardium: Double
    public var lvVoxels: Int
    public var rvVoxels: Int
    public var myoVoxels: Int

    public init(lvVoxels: Int, rvVoxels: Int, myoVoxels: Int, voxelVolume: Double) {
        self.lvVoxels = lvVoxels
        self.rvVoxels = rvVoxels
        self.myoVoxels = myoVoxels
        lvCavity = Double(lvVoxels) * voxelVolume / 1000
        rvCavity = Double(rvVoxels) * voxelVolume / 1000
        myocardium = Double(myoVoxels) * voxelVolume / 1000
    }
}

/// Areas of each structure on one short-axis slice (index k, the third grid axis).
public struct SliceAreas: Codable, Equatable, Sendable {
    public var slice: Int
    public var lvMm2: Double
    public var rvMm2: Double
    public var myoMm2: Double
    public var lvCm2: Double { lvMm2 / 100 }
    public var rvCm2: Double { rvMm2 / 100 }
    public var myoCm2: Double { myoMm2 / 100 }

    public init(slice: Int, lvMm2: Double, rvMm2: Double, myoMm2: Double) {
        self.slice = slice
        self.lvMm2 = lvMm2
        self.rvMm2 = rvMm2
        self.myoMm2 = myoMm2
    }

    enum CodingKeys: String, CodingKey { case slice, lvMm2, rvMm2, myoMm2, lvCm2, rvCm2, myoCm2 }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            slice: try c.decode(Int.self, forKey: .slice), lvMm2: try c.decode(Double.self, forKey: .lvMm2),
            rvMm2: try c.decode(Double.self, forKey: .rvMm2),
            myoMm2: try c.decode(Double.self, forKey: .myoMm2))
    }

    /// Writes the cm^2 values too, for readers of the JSON.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(slice, forKey: .slice)
        try c.encode(lvMm2, forKey: .lvMm2)
        try c.encode(rvMm2, forKey: .rvMm2)
        try c.encode(myoMm2, forKey: .myoMm2)
        try c.encode(lvCm2, forKey: .lvCm2)
        try c.encode(rvCm2, forKey: .rvCm2)
        try c.encode(myoCm2, forKey: .myoCm2)
    }
}

/// End-diastolic and end-systolic volumes of one ventricle and what follows from them.
/// EF is nil when EDV is 0; indexed values are nil unless BSA is known.
public struct VentricleFunction: Codable, Equatable, Sendable {
    /// End-diastolic volume, mL.
    public var edv: Double
    /// End-systolic volume, mL.
    public var esv: Double
    /// Stroke volume EDV - ESV, mL.
    public var sv: Double
    /// Ejection fraction 100 * SV / EDV, percent.
    public var ef: Double?
    /// EDV, ESV and SV divided by BSA, mL/m^2.
    public var edvIndex: Double?
    public var esvIndex: Double?
    public var svIndex: Double?

    public init(edv: Double, esv: Double, bsa: Double?) {
        self.edv = edv
        self.esv = esv
        sv = edv - esv
        ef = edv > 0 ? 100 * (edv - esv) / edv : nil
        edvIndex = bsa.map { edv / $0 }
        esvIndex = bsa.map { esv / $0 }
        svIndex = bsa.map { (edv - esv) / $0 }
    }

    enum CodingKeys: String, CodingKey { case edv, esv, sv, ef, edvIndex, esvIndex, svIndex }

    /// Missing values are written as `null`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(edv, forKey: .edv)
        try c.encode(esv, forKey: .esv)
        try c.encode(sv, forKey: .sv)
        try c.encode(ef, forKey: .ef)
        try c.encode(edvIndex, forKey: .edvIndex)
        try c.encode(esvIndex, forKey: .esvIndex)
        try c.encode(svIndex, forKey: .svIndex)
    }
}

/// The per-frame LV cavity volume of a segmented cine and the frames picked as ED (largest
/// volume) and ES (smallest volume); ties go to the earliest frame.
public struct PhaseSelection: Codable, Equatable, Sendable {
    /// LV cavity volume per frame, mL.
    public var lvVolumes: [Double]
    public var edFrame: Int
    public var esFrame: Int

    public init(lvVolumes: [Double], edFrame: Int, esFrame: Int) {
        self.lvVolumes = lvVolumes
        self.edFrame = edFrame
        self.esFrame = esFrame
    }
}

/// Cheap plausibility checks on a function report. Raw values are the codes written to JSON
/// and CSV.
public enum QCFlag: String, Codable, CaseIterable, Sendable {
    case noLVAtED = "no_lv_at_ed"
    case noLVAtES = "no_lv_at_es"
    case noRVAtED = "no_rv_at_ed"
    case noRVAtES = "no_rv_at_es"
    case noMyoAtED = "no_myo_at_ed"
    case lvESVLargerThanEDV = "lv_esv_larger_than_edv"
    case rvESVLargerThanEDV = "rv_esv_larger_than_edv"
    case lvEFOutOfRange = "lv_ef_outside_0_100"
    case rvEFOutOfRange = "rv_ef_outside_0_100"
    case lvSliceWithoutMyo = "lv_slice_without_myo_at_ed"
    case unexpectedLabels = "labels_above_3"
    case sameEDAndESFrame = "same_ed_and_es_frame"

    public var message: String {
        switch self {
        case .noLVAtED: "no LV cavity at ED"
        case .noLVAtES: "no LV cavity at ES"
        case .noRVAtED: "no RV cavity at ED"
        case .noRVAtES: "no RV cavity at ES"
        case .noMyoAtED: "no myocardium at ED"
        case .lvESVLargerThanEDV: "ES LV volume larger than ED"
        case .rvESVLargerThanEDV: "ES RV volume larger than ED"
        case .lvEFOutOfRange: "LV EF outside 0-100 %"
        case .rvEFOutOfRange: "RV EF outside 0-100 %"
        case .lvSliceWithoutMyo: "a slice holds LV cavity but no myocardium at ED"
        case .unexpectedLabels: "label values above 3 present (ignored)"
        case .sameEDAndESFrame: "ED and ES are the same frame"
        }
    }
}

/// Clinical function measures from an ED/ES pair of segmentations.
public struct FunctionReport: Codable, Equatable, Sendable {
    /// Free-form identifier (patient / study), first CSV column.
    public var subject: String?
    /// Frame indexes (0-based) of ED and ES when they were picked from a cine.
    public var edFrame: Int?
    public var esFrame: Int?
    public var heightCm: Double?
    public var weightKg: Double?
    /// Body surface area (Mosteller), m^2; nil unless height and weight are both known.
    public var bsa: Double?
    public var lv: VentricleFunction
    public var rv: VentricleFunction
    /// LV myocardial mass at ED: myocardial volume (mL) x 1.05 g/mL, in g.
    public var lvMass: Double
    /// LV mass / BSA, g/m^2.
    public var lvMassIndex: Double?
    public var ed: StructureVolumes
    public var es: StructureVolumes
    public var sliceAreasED: [SliceAreas]
    public var sliceAreasES: [SliceAreas]
    public var flags: [QCFlag]
    /// Voxel spacing (mm, i j k) of the ED map.
    public var spacing: [Double]

    enum CodingKeys: String, CodingKey {
        case subject, edFrame, esFrame, heightCm, weightKg, bsa, lv, rv, lvMass, lvMassIndex
        case ed, es, sliceAreasED, sliceAreasES, flags, spacing
    }

    /// Missing values are written as `null`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(subject, forKey: .subject)
        try c.encode(edFrame, forKey: .edFrame)
        try c.encode(esFrame, forKey: .esFrame)
        try c.encode(heightCm, forKey: .heightCm)
        try c.encode(weightKg, forKey: .weightKg)
        try c.encode(bsa, forKey: .bsa)
        try c.encode(lv, forKey: .lv)
        try c.encode(rv, forKey: .rv)
        try c.encode(lvMass, forKey: .lvMass)
        try c.encode(lvMassIndex, forKey: .lvMassIndex)
        try c.encode(ed, forKey: .ed)
        try c.encode(es, forKey: .es)
        try c.encode(sliceAreasED, forKey: .sliceAreasED)
        try c.encode(sliceAreasES, forKey: .sliceAreasES)
        try c.encode(flags, forKey: .flags)
        try c.encode(spacing, forKey: .spacing)
    }

    /// Pretty-printed JSON with sorted keys; missing values are `null`.
    public func jsonData() throws -> Data { try sortedJSON(self) }

    // MARK: CSV

    /// The CSV columns in their fixed order: name and how a report fills it. Volumes in mL,
    /// EF in %, mass in g, indexed values per m^2; 2 decimals (BSA 4); empty when missing.
    private static let columns: [(String, @Sendable (FunctionReport) -> String)] = [
        ("subject", { csvQuote($0.subject ?? "") }),
        ("ed_frame", { $0.edFrame.map(String.init) ?? "" }),
        ("es_frame", { $0.esFrame.map(String.init) ?? "" }),
        ("height_cm", { fixed($0.heightCm, 2) }),
        ("weight_kg", { fixed($0.weightKg, 2) }),
        ("bsa_m2", { fixed($0.bsa, 4) }),
        ("lv_edv_ml", { fixed($0.lv.edv, 2) }),
        ("lv_esv_ml", { fixed($0.lv.esv, 2) }),
        ("lv_sv_ml", { fixed($0.lv.sv, 2) }),
        ("lv_ef_pct", { fixed($0.lv.ef, 2) }),
        ("lv_mass_g", { fixed($0.lvMass, 2) }),
        ("myo_ed_ml", { fixed($0.ed.myocardium, 2) }),
        ("myo_es_ml", { fixed($0.es.myocardium, 2) }),
        ("rv_edv_ml", { fixed($0.rv.edv, 2) }),
        ("rv_esv_ml", { fixed($0.rv.esv, 2) }),
        ("rv_sv_ml", { fixed($0.rv.sv, 2) }),
        ("rv_ef_pct", { fixed($0.rv.ef, 2) }),
        ("lv_edvi_ml_m2", { fixed($0.lv.edvIndex, 2) }),
        ("lv_esvi_ml_m2", { fixed($0.lv.esvIndex, 2) }),
        ("lv_svi_ml_m2", { fixed($0.lv.svIndex, 2) }),
        ("lv_massi_g_m2", { fixed($0.lvMassIndex, 2) }),
        ("rv_edvi_ml_m2", { fixed($0.rv.edvIndex, 2) }),
        ("rv_esvi_ml_m2", { fixed($0.rv.esvIndex, 2) }),
        ("rv_svi_ml_m2", { fixed($0.rv.svIndex, 2) }),
        ("qc_flags", { csvQuote($0.flags.map(\.rawValue).joined(separator: ";")) }),
    ]

    /// Column names, in the order `csvRow` fills them.
    public static var csvColumns: [String] { columns.map(\.0) }
    /// The header line (no trailing newline).
    public static var csvHeader: String { csvColumns.joined(separator: ",") }
    /// One line of values (no trailing newline), in `csvColumns` order.
    public var csvRow: String { Self.columns.map { $0.1(self) }.joined(separator: ",") }

    private static func fixed(_ v: Double?, _ decimals: Int) -> String {
        guard let v, v.isFinite else { return "" }
        return String(format: "%.\(decimals)f", v)
    }

    private static func csvQuote(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
