import Foundation
import Testing
@testable import CardiacImaging

@Suite struct StatsTests {
    /// Splits one CSV line, honouring double-quoted fields.
    static func csvFields(_ line: String) -> [String] {
        var fields: [String] = [], cur = "", quoted = false
        var chars = Array(line)[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" {
                    if chars.first == "\"" { cur.append("\""); chars.removeFirst() } else { quoted = false }
                } else { cur.append(c) }
            } else if c == "\"" { quoted = true } else if c == "," { fields.append(cur); cur = "" } else { cur.append(c) }
        }
        fields.append(cur)
        return fields
    }

    static let shape = GridShape(20, 20, 6)
    static let spacing = SIMD3(1.5, 1.5, 8.0)  // 18 mm^3 per voxel, 2.25 mm^2 per pixel

    /// ED: LV 10x10x5 = 500 voxels (9 mL), Myo 4x10x5 = 200 (3.6 mL), RV 5x10x4 = 200 (3.6 mL).
    static func ed(spacing: SIMD3<Double> = spacing) -> LabelMap {
        MetricsFixtures.labelMap(shape, spacing: spacing) { i, j, k in
            if (5..<15).contains(i) && (5..<15).contains(j) && k < 5 { return 3 }
            if i < 4 && j < 10 && k < 5 { return 2 }
            if i >= 15 && j < 10 && k < 4 { return 1 }
            return 0
        }
    }

    /// ES: LV 6x10x5 = 300 voxels (5.4 mL), Myo the same 200, RV 5x5x4 = 100 (1.8 mL).
    static func es(spacing: SIMD3<Double> = spacing) -> LabelMap {
        MetricsFixtures.labelMap(shape, spacing: spacing) { i, j, k in
            if (5..<11).contains(i) && (5..<15).contains(j) && k < 5 { return 3 }
            if i < 4 && j < 10 && k < 5 { return 2 }
            if i >= 15 && j < 5 && k < 4 { return 1 }
            return 0
        }
    }

    static func close(_ a: Double?, _ b: Double, _ tol: Double = 1e-9) -> Bool {
        guard let a else { return false }
        return abs(a - b) <= tol
    }

    @Test func volumesInMillilitres() {
        let v = ClinicalStats.volumes(Self.ed())
        #expect(v.lvVoxels == 500 && v.myoVoxels == 200 && v.rvVoxels == 200)
        #expect(Self.close(v.lvCavity, 9.0) && Self.close(v.myocardium, 3.6) && Self.close(v.rvCavity, 3.6))
    }

    @Test func functionFromEDAndES() throws {
        let r = try ClinicalStats.report(ed: Self.ed(), es: Self.es(), heightCm: 180, weightKg: 80)
        #expect(Self.close(r.lv.edv, 9.0) && Self.close(r.lv.esv, 5.4) && Self.close(r.lv.sv, 3.6))
        #expect(Self.close(r.lv.ef, 40))
        #expect(Self.close(r.rv.edv, 3.6) && Self.close(r.rv.esv, 1.8) && Self.close(r.rv.sv, 1.8))
        #expect(Self.close(r.rv.ef, 50))
        #expect(Self.close(r.lvMass, 3.6 * 1.05))
        // Mosteller: sqrt(180 * 80 / 3600) = 2 m^2.
        #expect(Self.close(r.bsa, 2))
        #expect(Self.close(r.lv.edvIndex, 4.5) && Self.close(r.lv.esvIndex, 2.7) && Self.close(r.lv.svIndex, 1.8))
        #expect(Self.close(r.rv.edvIndex, 1.8) && Self.close(r.lvMassIndex, 1.89))
        #expect(r.flags.isEmpty)
        #expect(r.spacing == [1.5, 1.5, 8])
    }

    @Test func perSliceAreas() throws {
        let r = try ClinicalStats.report(ed: Self.ed(), es: Self.es())
        #expect(r.sliceAreasED.count == 6 && r.sliceAreasES.count == 6)
        let s0 = r.sliceAreasED[0]
        #expect(s0.slice == 0)
        #expect(Self.close(s0.lvMm2, 100 * 2.25) && Self.close(s0.lvCm2, 2.25))
        #expect(Self.close(s0.myoMm2, 40 * 2.25) && Self.close(s0.rvMm2, 50 * 2.25))
        #expect(r.sliceAreasED[4].rvMm2 == 0 && r.sliceAreasED[4].lvMm2 > 0)
        #expect(r.sliceAreasED[5] == SliceAreas(slice: 5, lvMm2: 0, rvMm2: 0, myoMm2: 0))
        #expect(Self.close(r.sliceAreasES[2].lvMm2, 60 * 2.25) && Self.close(r.sliceAreasES[3].rvMm2, 25 * 2.25))
        // Slice areas times slice thickness add up to the volume.
        let sum = r.sliceAreasED.map(\.lvMm2).reduce(0, +) * 8 / 1000
        #expect(Self.close(sum, r.lv.edv))
    }

    @Test func obliqueGridKeepsAreasAndVolumes() throws {
        let c = 0.6, s = 0.8
        let g = VolumeGeometry(
            spacing: Self.spacing, origin: SIMD3(-50, 20, 7),
            direction: [SIMD3(c, s, 0), SIMD3(-s, c, 0), SIMD3(0, 0, 1)])
        #expect(Self.close(ClinicalStats.pixelArea(g), 2.25))
        var ed = Self.ed()
        ed.geometry = g
        #expect(Self.close(ClinicalStats.volumes(ed).lvCavity, 9.0))
    }

    @Test func bodySurfaceAreaMosteller() throws {
        #expect(Self.close(try ClinicalStats.bodySurfaceArea(heightCm: 170, weightKg: 70), (170.0 * 70 / 3600).squareRoot()))
        #expect(Self.close(try ClinicalStats.bodySurfaceArea(heightCm: 160, weightKg: 90), 2.0))
        #expect(throws: ImagingError.self) { try ClinicalStats.bodySurfaceArea(heightCm: -1, weightKg: 70) }
        #expect(throws: ImagingError.self) { try ClinicalStats.report(ed: Self.ed(), es: Self.es(), heightCm: 0) }
        // Only one of height and weight: no BSA, no indexed values.
        let r = try ClinicalStats.report(ed: Self.ed(), es: Self.es(), weightKg: 70)
        #expect(r.bsa == nil && r.lv.edvIndex == nil && r.lvMassIndex == nil && r.weightKg == 70)
    }

    @Test func phaseSelectionWithTies() throws {
        let curve: [Double] = [100, 120, 150, 150, 90, 80, 80, 110]
        let (ed, es) = try ClinicalStats.selectPhases(lvVolumes: curve)
        #expect(ed == 2 && es == 5)
        #expect(try ClinicalStats.selectPhases(lvVolumes: [7]) == (0, 0))
        #expect(throws: ImagingError.self) { try ClinicalStats.selectPhases(lvVolumes: []) }

        // Frames whose LV holds 3, 5, 5, 2, 4, 2 voxels: ED frame 1, ES frame 3.
        let counts = [3, 5, 5, 2, 4, 2]
        let frames = counts.map { n in
            MetricsFixtures.labelMap(GridShape(4, 4, 2), spacing: Self.spacing) { i, j, k in j * 4 + i + 16 * k < n ? 3 : 0 }
        }
        let sel = try ClinicalStats.selectPhases(frames: frames)
        #expect(sel.edFrame == 1 && sel.esFrame == 3)
        #expect(sel.lvVolumes.count == 6 && Self.close(sel.lvVolumes[1], 5 * 18 / 1000))
        let (report, phases) = try ClinicalStats.report(frames: frames, subject: "cine")
        #expect(phases == sel && report.edFrame == 1 && report.esFrame == 3)
        #expect(Self.close(report.lv.ef, 60))
        let flat = try ClinicalStats.report(frames: [frames[0], frames[0]]).0
        #expect(flat.flags.contains(.sameEDAndESFrame))
    }

    @Test func qcFlags() throws {
        let swapped = try ClinicalStats.report(ed: Self.es(), es: Self.ed())
        #expect(swapped.flags == [.lvESVLargerThanEDV, .rvESVLargerThanEDV, .lvEFOutOfRange, .rvEFOutOfRange])
        #expect(Self.close(swapped.lv.ef, -100.0 * 3.6 / 5.4))

        let empty = MetricsFixtures.labelMap(Self.shape, spacing: Self.spacing) { _, _, _ in 0 }
        let none = try ClinicalStats.report(ed: empty, es: empty)
        #expect(none.lv.ef == nil && none.rv.ef == nil && none.lvMass == 0)
        #expect(none.flags == [.noLVAtED, .noLVAtES, .noRVAtED, .noRVAtES, .noMyoAtED])

        var odd = Self.ed()
        odd.labels[odd.labels.count - 1] = 7
        // LV on slice 5 without myocardium there.
        for j in 0..<3 { odd.labels[5 * 400 + j * 20 + 10] = 3 }
        let r = try ClinicalStats.report(ed: odd, es: Self.es())
        #expect(r.flags == [.lvSliceWithoutMyo, .unexpectedLabels])
        #expect(r.ed.lvVoxels == 503)
        #expect(!QCFlag.lvESVLargerThanEDV.message.isEmpty)
    }

    @Test func gridMismatchBetweenPhasesThrows() {
        let other = MetricsFixtures.labelMap(GridShape(20, 20, 5), spacing: Self.spacing) { _, _, _ in 3 }
        #expect(throws: ImagingError.self) { try ClinicalStats.report(ed: Self.ed(), es: other) }
        #expect(throws: ImagingError.self) {
            try ClinicalStats.report(ed: Self.ed(), es: Self.es(spacing: SIMD3(1.5, 1.5, 10)))
        }
    }

    @Test func csvHeaderAndRow() throws {
        let header = FunctionReport.csvHeader
        #expect(Self.csvFields(header) == FunctionReport.csvColumns)
        #expect(Set(FunctionReport.csvColumns).count == FunctionReport.csvColumns.count)
        var r = try ClinicalStats.report(ed: Self.ed(), es: Self.es(), heightCm: 180, weightKg: 80, subject: "patient001")
        var fields = Self.csvFields(r.csvRow)
        #expect(fields.count == FunctionReport.csvColumns.count)
        let row = Dictionary(uniqueKeysWithValues: zip(FunctionReport.csvColumns, fields))
        #expect(row["subject"] == "patient001" && row["ed_frame"] == "")
        #expect(row["lv_edv_ml"] == "9.00" && row["lv_ef_pct"] == "40.00" && row["bsa_m2"] == "2.0000")
        #expect(row["lv_mass_g"] == "3.78" && row["lv_massi_g_m2"] == "1.89" && row["qc_flags"] == "")

        // Missing values leave empty fields; quoting keeps the column count.
        r = try ClinicalStats.report(ed: Self.es(), es: Self.ed(), subject: "a, \"b\"")
        fields = Self.csvFields(r.csvRow)
        #expect(fields.count == FunctionReport.csvColumns.count)
        let row2 = Dictionary(uniqueKeysWithValues: zip(FunctionReport.csvColumns, fields))
        #expect(row2["subject"] == "a, \"b\"" && row2["bsa_m2"] == "" && row2["lv_edvi_ml_m2"] == "")
        #expect(row2["qc_flags"] == "lv_esv_larger_than_edv;rv_esv_larger_than_edv;lv_ef_outside_0_100;rv_ef_outside_0_100")
    }

    @Test func jsonRoundTrip() throws {
        for r in [
            try ClinicalStats.report(ed: Self.ed(), es: Self.es(), heightCm: 172.5, weightKg: 68.2, subject: "p1"),
            try ClinicalStats.report(ed: Self.es(), es: Self.ed()),
        ] {
            let data = try r.jsonData()
            let back = try JSONDecoder().decode(FunctionReport.self, from: data)
            #expect(back == r)
            #expect(try back.jsonData() == data)
        }
        let text = String(decoding: try ClinicalStats.report(ed: Self.ed(), es: Self.es()).jsonData(), as: UTF8.self)
        #expect(text.contains("\"bsa\" : null") && text.contains("\"edvIndex\" : null"))
        #expect(text.contains("\"lvCm2\" : 2.25"))
        let sel = PhaseSelection(lvVolumes: [1, 2.5], edFrame: 1, esFrame: 0)
        #expect(try JSONDecoder().decode(PhaseSelection.self, from: try JSONEncoder().encode(sel)) == sel)
    }
}
