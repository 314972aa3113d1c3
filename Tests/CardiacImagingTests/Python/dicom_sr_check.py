#!/usr/bin/env python3
"""Independent check of our measurement report (DICOM SR, TID 1500) with highdicom and pydicom
(test helper; the product never runs Python).

  dicom_sr_check.py SR
      -> JSON: the report's study and series, its template, procedure, and every measurement
         group as highdicom parses it: tracking identifier, time point, finding sites, the
         referenced SEG instance and segment numbers, the source series, and each measurement's
         concept (value, scheme, meaning), value and UCUM unit.
"""
import json
import sys

import highdicom as hd
import pydicom


def concept(c):
    return [str(c.value), str(c.scheme_designator), str(c.meaning)]


def time_point(group):
    for item in group[0].ContentSequence:
        name = item.ConceptNameCodeSequence[0]
        if str(name.CodeValue) == "C2348792" and item.ValueType == "TEXT":
            return str(item.TextValue)
    return None


def measurements(group):
    out = []
    for m in group.get_measurements():
        out.append({"concept": concept(m.name), "value": float(m.value), "unit": concept(m.unit)})
    return out


def main():
    ds = pydicom.dcmread(sys.argv[1])
    sr = hd.sr.srread(sys.argv[1])
    report = sr.content
    templates = [str(t.TemplateIdentifier) for t in ds.ContentTemplateSequence] if "ContentTemplateSequence" in ds else []
    result = {
        "sop_class": str(ds.SOPClassUID),
        "study_uid": str(ds.StudyInstanceUID),
        "series_uid": str(ds.SeriesInstanceUID),
        "patient_id": str(ds.get("PatientID", "")),
        "templates": templates,
        "title": concept(hd.sr.CodedConcept.from_dataset(ds.ConceptNameCodeSequence[0])),
        "procedures": [],
        "evidence": [str(i.ReferencedSOPInstanceUID)
                     for s in ds.CurrentRequestedProcedureEvidenceSequence
                     for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence],
        "volumetric": [],
        "other": [],
    }
    for item in ds.ContentSequence:
        name = item.ConceptNameCodeSequence[0]
        if str(name.CodeValue) == "121058" and item.ValueType == "CODE":  # Procedure reported
            result["procedures"].append(concept(hd.sr.CodedConcept.from_dataset(item.ConceptCodeSequence[0])))
    for g in report.get_volumetric_roi_measurement_groups():
        seg = g.referenced_segment
        result["volumetric"].append({
            "tracking_id": g.tracking_identifier,
            "time_point": time_point(g),
            "finding_sites": [concept(s.value) for s in g.finding_sites],
            "seg_instance": str(seg.referenced_sop_instance_uid),
            "seg_class": str(seg.referenced_sop_class_uid),
            "segment_numbers": [int(n) for n in seg.referenced_segment_numbers],
            "source_series": str(seg.source_series_for_segmentation.value)
                if seg.source_series_for_segmentation is not None else None,
            "measurements": measurements(g),
        })
    for g in report.get_image_measurement_groups():
        result["other"].append({
            "tracking_id": g.tracking_identifier,
            "finding_sites": [concept(s.value) for s in g.finding_sites],
            "measurements": measurements(g),
        })
    print(json.dumps(result))


if __name__ == "__main__":
    main()
