import CDicom
import Foundation

/// Settings of the measurement report (DICOM SR) autosam writes.
public struct DicomSROptions: Sendable {
    public var seriesInstanceUID: String = DicomUID.make()
    public var seriesDescription = "autosam measurements"
    public var seriesNumber = 9002
    public var instanceNumber = 1
    /// The algorithm named on every volumetric measurement (TID 4019), with its parameters
    /// (the service gives the head version and the encoder's SHA-256).
    public var algorithmName = "autosam"
    public var algorithmVersion = BuildInfo.version
    public var algorithmParameters: [String] = []
    /// The observing device's model name (the service gives the head version).
    public var modelName = "autosam"
    /// The segments of the SEGs the report refers to, in the order the SEG writer numbered
    /// them (segment number = index + 1).
    public var segments = CardiacSegments.all

    public init() {}
}

/// Writes an Imaging Measurement Report (DICOM SR, TID 1500) of a cine study's function
/// measures through DCMTK's dcmsr: per ventricle and phase a volumetric group (TID 1411) that
/// references its segment in the ED or ES SEG and the source series, and per ventricle the
/// stroke volume and ejection fraction (TID 1501). Concepts as DICOM PS3.16 codes them
/// (docs/DICOM.md), units in UCUM.
public enum DicomSRWriter {
    static let procedure = DicomCode("241620005", "SCT", "Magnetic resonance imaging of heart")
    static let lvSite = DicomCode("87878005", "SCT", "Left ventricle")
    static let rvSite = DicomCode("53085002", "SCT", "Right ventricle")
    static let myoSite = DicomCode("49848007", "SCT", "Left ventricle myocardium")
    static let ml = DicomCode("ml", "UCUM", "milliliter")
    static let mlPerM2 = DicomCode("ml/m2", "UCUM", "milliliter per square meter")
    static let gram = DicomCode("g", "UCUM", "gram")
    static let gramPerM2 = DicomCode("g/m2", "UCUM", "gram per square meter")
    static let percent = DicomCode("%", "UCUM", "percent")

    /// One measured value: the concept, its unit, the number and, for an indexed value, a
    /// plain-words meaning (the concept codes the unindexed quantity).
    public struct Value: Sendable, Equatable {
        public var concept: DicomCode
        public var unit: DicomCode
        public var value: Double
        public var meaning: String?
    }

    /// One measurement group; `seg` names the SEG file and the structure for a volumetric one.
    public struct Group: Sendable {
        public var trackingID: String
        public var timePoint: String?
        public var site: DicomCode
        public var seg: (path: String, structure: DicomSegmentDescription)?
        public var values: [Value]
    }

    /// The groups of a study's report: what `write` puts in the SR.
    public static func groups(_ r: FunctionReport, edSeg: String, esSeg: String) -> [Group] {
        func indexed(_ concept: DicomCode, _ v: Double?, _ unit: DicomCode, _ meaning: String) -> [Value] {
            v.map { [Value(concept: concept, unit: unit, value: $0, meaning: meaning)] } ?? []
        }
        let lvEDV = DicomCode("8821-1", "LN", "Left Ventricular ED Volume"), lvESV = DicomCode("8823-7", "LN", "Left Ventricular ES Volume")
        let rvEDV = DicomCode("8822-9", "LN", "Right Ventricular ED Volume"), rvESV = DicomCode("8824-5", "LN", "Right Ventricular ES Volume")
        let mass = DicomCode("18087-7", "LN", "Left Ventricle Mass"), sv = DicomCode("90096001", "SCT", "Stroke Volume")
        let lvEF = DicomCode("8811-2", "LN", "Left ventricular ejection fraction by MR")
        let rvEF = DicomCode("8818-7", "LN", "Right ventricular ejection fraction by MR")
        func volume(_ id: String, _ phase: String, _ site: DicomCode, _ seg: String, _ s: DicomSegmentDescription,
                    _ concept: DicomCode, _ v: Double, _ index: Double?, _ words: String) -> Group {
            Group(trackingID: id, timePoint: phase, site: site, seg: (seg, s),
                  values: [Value(concept: concept, unit: ml, value: v)] + indexed(concept, index, mlPerM2, words + " / body surface area"))
        }
        func function(_ id: String, _ site: DicomCode, _ f: VentricleFunction, _ ef: DicomCode, _ name: String) -> Group {
            Group(trackingID: id, timePoint: nil, site: site, seg: nil,
                  values: [Value(concept: sv, unit: ml, value: f.sv)]
                      + indexed(sv, f.svIndex, mlPerM2, name + " stroke volume / body surface area")
                      + (f.ef.map { [Value(concept: ef, unit: percent, value: $0)] } ?? []))
        }
        return [
            volume("LV cavity, end-diastole", "ED", lvSite, edSeg, CardiacSegments.lv, lvEDV, r.lv.edv, r.lv.edvIndex, "Left ventricular end-diastolic volume"),
            volume("LV cavity, end-systole", "ES", lvSite, esSeg, CardiacSegments.lv, lvESV, r.lv.esv, r.lv.esvIndex, "Left ventricular end-systolic volume"),
            volume("RV cavity, end-diastole", "ED", rvSite, edSeg, CardiacSegments.rv, rvEDV, r.rv.edv, r.rv.edvIndex, "Right ventricular end-diastolic volume"),
            volume("RV cavity, end-systole", "ES", rvSite, esSeg, CardiacSegments.rv, rvESV, r.rv.esv, r.rv.esvIndex, "Right ventricular end-systolic volume"),
            Group(trackingID: "LV myocardium, end-diastole", timePoint: "ED", site: myoSite, seg: (edSeg, CardiacSegments.myo),
                  values: [Value(concept: mass, unit: gram, value: r.lvMass)]
                      + indexed(mass, r.lvMassIndex, gramPerM2, "Left ventricular mass / body surface area")),
            function("LV function", lvSite, r.lv, lvEF, "Left ventricular"),
            function("RV function", rvSite, r.rv, rvEF, "Right ventricular"),
        ]
    }

    /// Writes the report of `report` for `cine`, whose ED and ES SEGs (written by
    /// `DicomSegWriter` with the same segments) are `edSeg` and `esSeg`. Atomic.
    public static func write(
        _ report: FunctionReport, of cine: DicomCine, edSeg: String, esSeg: String, to path: String,
        options: DicomSROptions = DicomSROptions()
    ) throws {
        let source = cine.source(slice: 0, frame: 0)
        let groups = Self.groups(report, edSeg: edSeg, esSeg: esSeg)
        let strings = CStrings()
        defer { strings.free() }
        func code(_ c: DicomCode) -> asn_dicom_code {
            var r = asn_dicom_code()
            setCString(&r.value, c.value)
            setCString(&r.scheme, c.scheme)
            setCString(&r.meaning, c.meaning)
            return r
        }
        var buffers: [CBuffer<asn_dicom_sr_value>] = []
        defer { buffers.forEach { $0.free() } }
        var cGroups: [asn_dicom_sr_group] = []
        for g in groups {
            let values = g.values.map { v -> asn_dicom_sr_value in
                var c = asn_dicom_sr_value()
                c.concept = code(v.concept)
                c.unit = code(v.unit)
                c.value = v.value
                c.equivalent_meaning = v.meaning.map { UnsafePointer(strings.make($0)) } ?? nil
                return c
            }
            let b = CBuffer(values)
            buffers.append(b)
            var c = asn_dicom_sr_group()
            c.tracking_id = strings.make(g.trackingID)
            c.time_point = g.timePoint.map { UnsafePointer(strings.make($0)) } ?? nil
            c.finding_site = code(g.site)
            if let seg = g.seg {
                guard let k = options.segments.firstIndex(where: { $0.labelValue == seg.structure.labelValue }) else {
                    throw DicomError.invalidArgument("no segment for \(seg.structure.label)")
                }
                c.seg_file = strings.make(seg.path)
                c.segment_number = Int32(k + 1)
            }
            c.value_count = Int32(values.count)
            c.values = UnsafePointer(b.pointer)
            cGroups.append(c)
        }
        let params = options.algorithmParameters.map { Optional(UnsafePointer(strings.make($0))) }
        let groupBuffer = CBuffer(cGroups), paramBuffer = CBuffer(params)
        defer { groupBuffer.free(); paramBuffer.free() }
        var r = asn_dicom_sr_request()
        r.source_file = strings.make(source.path)
        r.source_series_instance_uid = strings.make(source.seriesInstanceUID)
        r.procedure = code(procedure)
        r.series_instance_uid = strings.make(options.seriesInstanceUID)
        r.series_description = strings.make(options.seriesDescription)
        r.series_number = Int32(options.seriesNumber)
        r.instance_number = Int32(options.instanceNumber)
        r.device_name = strings.make("autosam")
        r.manufacturer = strings.make("autosam")
        r.model_name = strings.make(options.modelName)
        r.software_version = strings.make(BuildInfo.version)
        r.algorithm_name = strings.make(options.algorithmName)
        r.algorithm_version = strings.make(options.algorithmVersion)
        r.parameter_count = Int32(params.count)
        r.algorithm_parameters = UnsafePointer(paramBuffer.pointer)
        r.group_count = Int32(cGroups.count)
        r.groups = UnsafePointer(groupBuffer.pointer)
        try DicomFile.writeAtomically(path) { tmp, err, n in asn_dicom_write_sr(tmp, &r, err, n) }
    }
}
