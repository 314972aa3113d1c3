// Writing DICOM SEG (binary) with dcmseg: one segment per structure, one frame per segment
// and slice, each frame placed by its own Plane Position and referencing its source image.
#include "internal.h"

#include "dcmtk/dcmfg/fgderimg.h"
#include "dcmtk/dcmfg/fgfracon.h"
#include "dcmtk/dcmfg/fgpixmsr.h"
#include "dcmtk/dcmfg/fgplanor.h"
#include "dcmtk/dcmfg/fgplanpo.h"
#include "dcmtk/dcmiod/iodreferences.h"
#include "dcmtk/dcmseg/segdoc.h"
#include "dcmtk/dcmseg/segment.h"

#include <map>
#include <memory>
#include <vector>

using namespace asn_dicom;

namespace {

std::string orEmpty(const char *s) { return s == nullptr ? std::string() : std::string(s); }

std::string checkRequest(const asn_dicom_seg_request *r) {
    if (r->rows <= 0 || r->columns <= 0 || r->rows > 65535 || r->columns > 65535) return "rows and columns must be 1...65535";
    if (r->slices <= 0) return "no slices";
    if (empty(r->source_file)) return "no source image file";
    if (empty(r->source_sop_class_uid) || empty(r->source_series_instance_uid)) return "source SOP Class and Series UIDs are required";
    if (r->source_sop_instance_uids == nullptr || r->positions == nullptr) return "source instances and positions are required";
    for (int k = 0; k < r->slices; ++k) {
        if (empty(r->source_sop_instance_uids[k])) return "slice " + std::to_string(k) + " has no source SOP Instance UID";
    }
    if (r->segment_count <= 0 || r->segments == nullptr) return "no segments";
    return "";
}

}  // namespace

extern "C" int asn_dicom_write_seg(const char *path, const asn_dicom_seg_request *r, const uint8_t *labels,
                                   char *err, size_t errlen) {
    asn_dicom_init();
    if (path == nullptr || r == nullptr || labels == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "null argument");
    std::string bad = checkRequest(r);
    if (!bad.empty()) return fail(err, errlen, ASN_DICOM_ERR_INVALID, bad);

    IODGeneralEquipmentModule::EquipmentInfo equipment(
        empty(r->manufacturer) ? "autosam" : r->manufacturer, empty(r->model_name) ? "autosam" : r->model_name, "1",
        empty(r->software_version) ? "0" : r->software_version);
    ContentIdentificationMacro content(std::to_string(r->instance_number > 0 ? r->instance_number : 1),
                                       empty(r->content_label) ? "AUTOSAM" : r->content_label,
                                       orEmpty(r->content_description), orEmpty(r->content_creator));
    DcmSegmentation *raw = nullptr;
    OFCondition c = DcmSegmentation::createBinarySegmentation(raw, Uint16(r->rows), Uint16(r->columns), equipment, content);
    if (c.bad() || raw == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, std::string("cannot create the segmentation: ") + c.text());
    std::unique_ptr<DcmSegmentation> seg(raw);

    // Patient, study and frame of reference come from the source images.
    c = seg->importFromSourceImage(r->source_file);
    if (c.bad()) return fail(err, errlen, ASN_DICOM_ERR_INVALID, std::string("cannot import patient/study from the source image: ") + c.text());
    if (!empty(r->series_instance_uid)) seg->getSeries().setSeriesInstanceUID(r->series_instance_uid);
    seg->getSeries().setSeriesDescription(empty(r->series_description) ? "autosam segmentation" : r->series_description);
    seg->getSeries().setSeriesNumber(std::to_string(r->series_number > 0 ? r->series_number : 1).c_str());

    FGPixelMeasures measures;
    measures.setPixelSpacing(formatDSList(r->pixel_spacing, 2).c_str());
    if (r->slice_thickness > 0) measures.setSliceThickness(formatDS(r->slice_thickness).c_str());
    if (r->spacing_between_slices > 0) measures.setSpacingBetweenSlices(formatDS(r->spacing_between_slices).c_str());
    FGPlaneOrientationPatient orientation;
    const double *o = r->orientation;
    orientation.setImageOrientationPatient(formatDS(o[0]).c_str(), formatDS(o[1]).c_str(), formatDS(o[2]).c_str(),
                                           formatDS(o[3]).c_str(), formatDS(o[4]).c_str(), formatDS(o[5]).c_str());
    if ((c = seg->addForAllFrames(measures)).bad() || (c = seg->addForAllFrames(orientation)).bad()) {
        return fail(err, errlen, ASN_DICOM_ERR_INVALID, std::string("cannot add shared functional groups: ") + c.text());
    }

    std::vector<Uint16> numbers;
    for (int s = 0; s < r->segment_count; ++s) {
        const asn_dicom_segment &d = r->segments[s];
        CodeSequenceMacro category(d.category.value, d.category.scheme, d.category.meaning);
        CodeSequenceMacro type(d.type.value, d.type.scheme, d.type.meaning);
        DcmSegment *segment = nullptr;
        c = DcmSegment::create(segment, d.label, category, type, DcmSegTypes::SAT_AUTOMATIC,
                               empty(r->algorithm_name) ? "autosam" : r->algorithm_name);
        if (c.bad() || segment == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, std::string("segment ") + d.label + ": " + c.text());
        if (d.description[0] != '\0') segment->setSegmentDescription(d.description);
        segment->setRecommendedDisplayCIELabValue(d.cielab[0], d.cielab[1], d.cielab[2]);
        if (!empty(r->algorithm_version)) {
            segment->getSegmentationAlgorithmIdentification().setAlgorithmVersion(r->algorithm_version);
        }
        Uint16 number = 0;
        if ((c = seg->addSegment(segment, number)).bad()) {
            delete segment;
            return fail(err, errlen, ASN_DICOM_ERR_INVALID, std::string("cannot add segment ") + d.label + ": " + c.text());
        }
        numbers.push_back(number);
    }

    // Frames are indexed by segment and by position along the stack (as highdicom does).
    char dimOrg[100];
    dcmGenerateUniqueIdentifier(dimOrg, SITE_INSTANCE_UID_ROOT);
    IODMultiframeDimensionModule &dims = seg->getDimensions();
    dims.addDimensionIndex(DCM_ReferencedSegmentNumber, dimOrg, DCM_SegmentIdentificationSequence, "Segment");
    dims.addDimensionIndex(DCM_ImagePositionPatient, dimOrg, DCM_PlanePositionSequence, "Position");

    const size_t plane = size_t(r->rows) * size_t(r->columns);
    std::vector<Uint8> frame(plane);
    for (int s = 0; s < r->segment_count; ++s) {
        const uint8_t value = r->segments[s].label_value;
        for (int k = 0; k < r->slices; ++k) {
            const uint8_t *src = labels + size_t(k) * plane;
            for (size_t p = 0; p < plane; ++p) frame[p] = src[p] == value ? 1 : 0;
            const double *pos = r->positions + 3 * k;
            std::unique_ptr<FGPlanePosPatient> position(FGPlanePosPatient::createMinimal(
                formatDS(pos[0]).c_str(), formatDS(pos[1]).c_str(), formatDS(pos[2]).c_str()));
            FGFrameContent frameContent;
            frameContent.setDimensionIndexValues(numbers[s], 0);
            frameContent.setDimensionIndexValues(Uint32(k + 1), 1);
            OFVector<ImageSOPInstanceReferenceMacro> sources(1);
            sources[0].setReferencedSOPClassUID(r->source_sop_class_uid);
            sources[0].setReferencedSOPInstanceUID(r->source_sop_instance_uids[k]);
            if (r->source_frame_numbers != nullptr && r->source_frame_numbers[k] > 0) {
                sources[0].addReferencedFrameNumber(Uint16(r->source_frame_numbers[k]));
            }
            std::unique_ptr<FGDerivationImage> derivation(
                DcmSegmentation::createDerivationImageFG(sources, "autosam segmentation of the source image"));
            if (!position || !derivation) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "cannot build per-frame functional groups");
            OFVector<FGBase *> perFrame;
            perFrame.push_back(position.get());
            perFrame.push_back(&frameContent);
            perFrame.push_back(derivation.get());
            if ((c = seg->addFrame(frame.data(), numbers[s], perFrame)).bad()) {
                return fail(err, errlen, ASN_DICOM_ERR_INVALID,
                            "cannot add frame (segment " + std::to_string(numbers[s]) + ", slice " + std::to_string(k) + "): " + c.text());
            }
        }
    }

    // Common Instance Reference: the referenced series and its instances.
    OFString patientID, studyUID;
    seg->getPatient().getPatientID(patientID);
    seg->getStudy().getStudyInstanceUID(studyUID);
    // One reference per source instance (a multi-frame source lists its frames).
    std::map<std::string, OFVector<Uint32>> instances;
    std::vector<std::string> order;
    for (int k = 0; k < r->slices; ++k) {
        std::string uid = r->source_sop_instance_uids[k];
        if (instances.find(uid) == instances.end()) order.push_back(uid);
        OFVector<Uint32> &frames = instances[uid];
        if (r->source_frame_numbers != nullptr && r->source_frame_numbers[k] > 0) frames.push_back(Uint32(r->source_frame_numbers[k]));
    }
    IODReferences references;
    for (const std::string &uid : order) {
        references.add(new IODImageReference(patientID, studyUID, r->source_series_instance_uid, uid.c_str(),
                                             r->source_sop_class_uid, instances[uid]));
    }
    seg->getCommonInstanceReference().addReferences(references, studyUID);

    c = seg->saveFile(path, EXS_LittleEndianExplicit);
    if (c.bad()) return fail(err, errlen, ASN_DICOM_ERR_WRITE, std::string("cannot write the SEG: ") + c.text());
    return ASN_DICOM_OK;
}
