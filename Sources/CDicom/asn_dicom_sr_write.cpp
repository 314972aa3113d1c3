// Writing an Imaging Measurement Report (DICOM SR, TID 1500) with dcmsr's content mapping
// classes: one measurement group per structure and phase, each referencing its SEG segment
// (TID 1411), and the study-level values (stroke volume, ejection fraction) as TID 1501 groups.
#include "internal.h"

#include "dcmtk/dcmiod/modhelp.h"
#include "dcmtk/dcmsr/cmr/tid1500.h"
#include "dcmtk/dcmsr/codes/dcm.h"
#include "dcmtk/dcmsr/dsrdoc.h"

#include <cmath>
#include <set>
#include <string>

using namespace asn_dicom;

namespace {

std::string orEmpty(const char *s) { return s == nullptr ? std::string() : std::string(s); }

DSRCodedEntryValue coded(const asn_dicom_code &c) { return DSRCodedEntryValue(c.value, c.scheme, c.meaning); }

std::string newUID() {
    char uid[100];
    dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
    return uid;
}

std::string checkRequest(const asn_dicom_sr_request *r) {
    if (empty(r->source_file)) return "no source image file";
    if (empty(r->source_series_instance_uid)) return "no source series UID";
    if (r->procedure.value[0] == '\0') return "no procedure";
    if (r->group_count <= 0 || r->groups == nullptr) return "no measurement groups";
    if (r->parameter_count < 0 || (r->parameter_count > 0 && r->algorithm_parameters == nullptr)) return "bad algorithm parameters";
    for (int i = 0; i < r->group_count; ++i) {
        const asn_dicom_sr_group &g = r->groups[i];
        std::string name = "group " + std::to_string(i);
        if (empty(g.tracking_id)) return name + " has no tracking identifier";
        if (g.value_count <= 0 || g.values == nullptr) return name + " has no values";
        if (!empty(g.seg_file) && g.segment_number <= 0) return name + " names a SEG file but no segment";
        for (int j = 0; j < g.value_count; ++j) {
            const asn_dicom_sr_value &v = g.values[j];
            if (!std::isfinite(v.value)) return name + ": value " + std::to_string(j) + " is not a finite number";
            if (v.concept.value[0] == '\0' || v.unit.value[0] == '\0') return name + ": value " + std::to_string(j) + " has no concept or unit";
        }
    }
    return "";
}

}  // namespace

extern "C" int asn_dicom_write_sr(const char *path, const asn_dicom_sr_request *r, char *err, size_t errlen) {
    asn_dicom_init();
    if (path == nullptr || r == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "null argument");
    std::string bad = checkRequest(r);
    if (!bad.empty()) return fail(err, errlen, ASN_DICOM_ERR_INVALID, bad);

    DcmFileFormat source;
    int rc = loadFile(source, r->source_file, true, err, errlen);
    if (rc != ASN_DICOM_OK) return rc;
    OFString studyUID;
    if (source.getDataset()->findAndGetOFString(DCM_StudyInstanceUID, studyUID).bad() || studyUID.empty()) {
        return fail(err, errlen, ASN_DICOM_ERR_INVALID, "the source image has no Study Instance UID");
    }

    TID1500_MeasurementReport report(CMR_CID7021::ImagingMeasurementReport);
    OFCondition c;
    auto check = [&](const std::string &what) {
        if (c.bad()) return fail(err, errlen, ASN_DICOM_ERR_INVALID, what + ": " + c.text());
        return int(ASN_DICOM_OK);
    };
    c = report.setLanguage(CID5000_Languages::English);
    if ((rc = check("language"))) return rc;
    std::string device = empty(r->device_uid) ? newUID() : std::string(r->device_uid);
    c = report.getObservationContext().addDeviceObserver(device, orEmpty(r->device_name), orEmpty(r->manufacturer), orEmpty(r->model_name));
    if ((rc = check("device observer"))) return rc;
    c = report.getImageLibrary().createNewImageLibrary();
    if ((rc = check("image library"))) return rc;
    c = report.addProcedureReported(coded(r->procedure));
    if ((rc = check("procedure reported"))) return rc;

    std::set<std::string> evidence;
    for (int i = 0; i < r->group_count; ++i) {
        const asn_dicom_sr_group &g = r->groups[i];
        const std::string name = std::string("group '") + g.tracking_id + "'";
        if (!empty(g.seg_file)) {
            c = report.addVolumetricROIMeasurements();
            if ((rc = check(name))) return rc;
            CMR_TID1411_in_TID1500 &m = report.getVolumetricROIMeasurements();
            DcmFileFormat seg;
            if ((rc = loadFile(seg, g.seg_file, true, err, errlen)) != ASN_DICOM_OK) return rc;
            evidence.insert(g.seg_file);
            if ((c = m.setTrackingIdentifier(g.tracking_id)).bad() || (c = m.setTrackingUniqueIdentifier(newUID().c_str())).bad()) return check(name);
            if (!empty(g.time_point) && (c = m.setTimePoint(g.time_point)).bad()) return check(name + " time point");
            if ((c = m.setReferencedSegment(*seg.getDataset(), Uint16(g.segment_number), OFFalse)).bad()) return check(name + " segment");
            if ((c = m.setSourceSeriesForSegmentation(r->source_series_instance_uid)).bad()) return check(name + " source series");
            if (g.finding_site.value[0] != '\0' && (c = m.addFindingSite(coded(g.finding_site))).bad()) return check(name + " finding site");
            for (int j = 0; j < g.value_count; ++j) {
                const asn_dicom_sr_value &v = g.values[j];
                CMR_TID1411_in_TID1500::MeasurementValue value(formatDS(v.value).c_str(), coded(v.unit));
                if ((c = m.addMeasurement(coded(v.concept), value, OFFalse)).bad()) return check(name + " " + v.concept.meaning);
                CMR_TID1419_in_TID1411_in_TID1500 &measurement = m.getMeasurement();
                if (!empty(v.equivalent_meaning) && (c = measurement.setEquivalentMeaningOfConceptName(v.equivalent_meaning)).bad()) return check(name + " meaning");
                if (!empty(r->algorithm_name)) {
                    if ((c = measurement.setAlgorithmIdentification(r->algorithm_name, orEmpty(r->algorithm_version))).bad()) return check(name + " algorithm");
                    for (int k = 0; k < r->parameter_count; ++k) {
                        if (empty(r->algorithm_parameters[k])) continue;
                        if ((c = measurement.getAlgorithmIdentification().addParameter(r->algorithm_parameters[k])).bad()) return check(name + " algorithm parameter");
                    }
                }
            }
        } else {
            c = report.addIndividualMeasurements();
            if ((rc = check(name))) return rc;
            CMR_TID1501_in_TID1500 &m = report.getIndividualMeasurements();
            if ((c = m.setTrackingIdentifier(g.tracking_id)).bad() || (c = m.setTrackingUniqueIdentifier(newUID().c_str())).bad()) return check(name);
            if (!empty(g.time_point) && (c = m.setTimePoint(g.time_point)).bad()) return check(name + " time point");
            if (g.finding_site.value[0] != '\0' && (c = m.addFindingSite(coded(g.finding_site))).bad()) return check(name + " finding site");
            for (int j = 0; j < g.value_count; ++j) {
                const asn_dicom_sr_value &v = g.values[j];
                CMR_TID1501_in_TID1500::MeasurementValue value(formatDS(v.value).c_str(), coded(v.unit));
                if ((c = m.addMeasurement(coded(v.concept), value, OFFalse)).bad()) return check(name + " " + v.concept.meaning);
                if (!empty(v.equivalent_meaning) && (c = m.getMeasurement().setEquivalentMeaningOfConceptName(v.equivalent_meaning)).bad()) return check(name + " meaning");
            }
        }
    }
    if (!report.isValid()) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "the measurement report is not valid (TID 1500)");

    DSRDocument doc;
    if ((c = doc.setTreeFromRootTemplate(report, OFTrue)).bad()) return check("building the document");
    if ((c = doc.createNewSeriesInStudy(studyUID)).bad()) return check("study");
    doc.setSeriesDescription(empty(r->series_description) ? "autosam measurements" : r->series_description);
    doc.setSeriesNumber(std::to_string(r->series_number > 0 ? r->series_number : 1).c_str());
    doc.setInstanceNumber(std::to_string(r->instance_number > 0 ? r->instance_number : 1).c_str());
    doc.setManufacturer(empty(r->manufacturer) ? "autosam" : r->manufacturer);
    doc.setManufacturerModelName(orEmpty(r->model_name).c_str());
    doc.setSoftwareVersions(orEmpty(r->software_version).c_str());
    doc.completeDocument();
    for (const std::string &f : evidence) {
        DcmFileFormat ff;
        if ((rc = loadFile(ff, f.c_str(), true, err, errlen)) != ASN_DICOM_OK) return rc;
        if ((c = doc.getCurrentRequestedProcedureEvidence().addItem(*ff.getDataset())).bad()) return check("evidence " + f);
    }

    DcmFileFormat out;
    DcmDataset *dataset = out.getDataset();
    if ((c = doc.write(*dataset)).bad()) return check("writing the document");
    // Patient and study as in the source images.
    DcmModuleHelpers::copyPatientModule(*source.getDataset(), *dataset);
    DcmModuleHelpers::copyPatientStudyModule(*source.getDataset(), *dataset);
    DcmModuleHelpers::copyGeneralStudyModule(*source.getDataset(), *dataset);
    // createNewSeriesInStudy made a series UID; the caller's, when given, replaces it.
    if (!empty(r->series_instance_uid)) dataset->putAndInsertString(DCM_SeriesInstanceUID, r->series_instance_uid);
    c = out.saveFile(path, EXS_LittleEndianExplicit);
    if (c.bad()) return fail(err, errlen, ASN_DICOM_ERR_WRITE, std::string("cannot write the SR: ") + c.text());
    return ASN_DICOM_OK;
}
