// Multi-frame images with functional groups (Enhanced MR): per-frame attributes, and a
// writer for the phantom and tests.
#include "internal.h"

#include <cstring>

using namespace asn_dicom;

namespace {

/// The first item of `sequence` inside the frame's per-frame item, else the shared item.
DcmItem *macro(DcmItem *perFrame, DcmItem *shared, const DcmTagKey &sequence) {
    DcmItem *item = nullptr;
    if (perFrame != nullptr && perFrame->findAndGetSequenceItem(sequence, item, 0).good() && item != nullptr) return item;
    if (shared != nullptr && shared->findAndGetSequenceItem(sequence, item, 0).good() && item != nullptr) return item;
    return nullptr;
}

bool doubles(DcmItem *item, const DcmTagKey &tag, double *out, int n) {
    if (item == nullptr) return false;
    for (int i = 0; i < n; ++i) {
        Float64 v = 0;
        if (item->findAndGetFloat64(tag, v, i).bad()) return false;
        out[i] = v;
    }
    return true;
}

int32_t integer(DcmItem *item, const DcmTagKey &tag) {
    Uint32 v = 0;
    if (item != nullptr && item->findAndGetUint32(tag, v).good()) return int32_t(v);
    return 0;
}

}  // namespace

extern "C" int asn_dicom_read_frame_attrs(const char *path, asn_dicom_frame_attrs *out, size_t count, int32_t *frames,
                                          char *err, size_t errlen) {
    if (path == nullptr || frames == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "null argument");
    *frames = 0;
    DcmFileFormat file;
    int rc = loadFile(file, path, true, err, errlen);
    if (rc != ASN_DICOM_OK) return rc;
    DcmDataset *ds = file.getDataset();
    Sint32 n = 0;
    ds->findAndGetSint32(DCM_NumberOfFrames, n);
    DcmSequenceOfItems *perFrameSeq = nullptr;
    if (ds->findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, perFrameSeq).bad() || perFrameSeq == nullptr) {
        return fail(err, errlen, ASN_DICOM_ERR_UNSUPPORTED, "a multi-frame image without Per-Frame Functional Groups");
    }
    if (n <= 0 || perFrameSeq->card() != static_cast<unsigned long>(n)) {
        return fail(err, errlen, ASN_DICOM_ERR_INVALID,
                    "Number of Frames " + std::to_string(n) + " but " + std::to_string(perFrameSeq->card()) + " per-frame items");
    }
    *frames = n;
    DcmItem *shared = nullptr;
    ds->findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0);
    for (Sint32 f = 0; f < n && size_t(f) < count; ++f) {
        asn_dicom_frame_attrs &a = out[f];
        memset(&a, 0, sizeof a);
        DcmItem *pf = perFrameSeq->getItem(static_cast<unsigned long>(f));
        a.has_image_position = doubles(macro(pf, shared, DCM_PlanePositionSequence), DCM_ImagePositionPatient, a.image_position, 3);
        a.has_image_orientation =
            doubles(macro(pf, shared, DCM_PlaneOrientationSequence), DCM_ImageOrientationPatient, a.image_orientation, 6);
        DcmItem *measures = macro(pf, shared, DCM_PixelMeasuresSequence);
        a.has_pixel_spacing = doubles(measures, DCM_PixelSpacing, a.pixel_spacing, 2);
        a.has_slice_thickness = doubles(measures, DCM_SliceThickness, &a.slice_thickness, 1);
        a.rescale_slope = 1;
        a.rescale_intercept = 0;
        DcmItem *transform = macro(pf, shared, DCM_PixelValueTransformationSequence);
        bool slope = doubles(transform, DCM_RescaleSlope, &a.rescale_slope, 1);
        bool inter = doubles(transform, DCM_RescaleIntercept, &a.rescale_intercept, 1);
        a.has_rescale = slope || inter;
        if (a.rescale_slope == 0) a.rescale_slope = 1;
        a.has_trigger_time =
            doubles(macro(pf, shared, DCM_CardiacSynchronizationSequence), DCM_NominalCardiacTriggerDelayTime, &a.trigger_time, 1);
        DcmItem *content = macro(pf, nullptr, DCM_FrameContentSequence);
        a.temporal_position_index = integer(content, DCM_TemporalPositionIndex);
        a.in_stack_position = integer(content, DCM_InStackPositionNumber);
    }
    return ASN_DICOM_OK;
}

extern "C" int asn_dicom_write_enhanced_mr(const char *path, const asn_dicom_mr_image *m, int32_t frames,
                                           const asn_dicom_frame_attrs *attrs, const uint16_t *pixels, char *err,
                                           size_t errlen) {
    asn_dicom_init();
    if (path == nullptr || m == nullptr || attrs == nullptr || pixels == nullptr || frames <= 0) {
        return fail(err, errlen, ASN_DICOM_ERR_INVALID, "null argument or no frames");
    }
    if (empty(m->sop_instance_uid) || empty(m->study_instance_uid) || empty(m->series_instance_uid)) {
        return fail(err, errlen, ASN_DICOM_ERR_INVALID, "SOP Instance, Study and Series Instance UIDs are required");
    }
    DcmFileFormat file;
    DcmDataset *ds = file.getDataset();
    OFCondition c = EC_Normal;
    auto put = [&](DcmItem *item, const DcmTagKey &tag, const std::string &v) {
        if (c.good()) c = item->putAndInsertOFStringArray(tag, v.c_str());
    };
    auto str = [&](const DcmTagKey &tag, const char *v) { put(ds, tag, empty(v) ? "" : v); };
    put(ds, DCM_SpecificCharacterSet, "ISO_IR 100");
    put(ds, DCM_ImageType, "ORIGINAL\\PRIMARY\\OTHER\\NONE");
    put(ds, DCM_SOPClassUID, UID_EnhancedMRImageStorage);
    str(DCM_SOPInstanceUID, m->sop_instance_uid);
    str(DCM_StudyDate, m->study_date);
    str(DCM_StudyTime, m->study_time);
    str(DCM_ContentDate, m->study_date);
    str(DCM_ContentTime, m->study_time);
    str(DCM_AccessionNumber, m->accession_number);
    put(ds, DCM_Modality, "MR");
    str(DCM_Manufacturer, m->manufacturer);
    put(ds, DCM_ReferringPhysicianName, "");
    str(DCM_StudyDescription, m->study_description);
    str(DCM_SeriesDescription, m->series_description);
    str(DCM_PatientName, m->patient_name);
    str(DCM_PatientID, m->patient_id);
    put(ds, DCM_PatientBirthDate, "");
    str(DCM_PatientSex, m->patient_sex);
    if (m->patient_size > 0) put(ds, DCM_PatientSize, formatDS(m->patient_size));
    if (m->patient_weight > 0) put(ds, DCM_PatientWeight, formatDS(m->patient_weight));
    if (m->heart_rate > 0) put(ds, DCM_HeartRate, std::to_string(long(m->heart_rate + 0.5)));
    if (m->cardiac_number_of_images > 0) put(ds, DCM_CardiacNumberOfImages, std::to_string(m->cardiac_number_of_images));
    str(DCM_StudyInstanceUID, m->study_instance_uid);
    str(DCM_SeriesInstanceUID, m->series_instance_uid);
    str(DCM_StudyID, m->study_id);
    put(ds, DCM_SeriesNumber, std::to_string(m->series_number));
    put(ds, DCM_InstanceNumber, std::to_string(m->instance_number));
    str(DCM_FrameOfReferenceUID, m->frame_of_reference_uid);
    put(ds, DCM_PositionReferenceIndicator, "");
    put(ds, DCM_NumberOfFrames, std::to_string(frames));
    if (c.good()) c = ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
    put(ds, DCM_PhotometricInterpretation, "MONOCHROME2");
    if (c.good()) c = ds->putAndInsertUint16(DCM_Rows, Uint16(m->rows));
    if (c.good()) c = ds->putAndInsertUint16(DCM_Columns, Uint16(m->columns));
    if (c.good()) c = ds->putAndInsertUint16(DCM_BitsAllocated, 16);
    if (c.good()) c = ds->putAndInsertUint16(DCM_BitsStored, 16);
    if (c.good()) c = ds->putAndInsertUint16(DCM_HighBit, 15);
    if (c.good()) c = ds->putAndInsertUint16(DCM_PixelRepresentation, 0);

    // Shared: what every frame has in common (taken from frame 0).
    DcmItem *shared = nullptr, *item = nullptr;
    if (c.good()) c = ds->findOrCreateSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0);
    if (c.good()) c = shared->findOrCreateSequenceItem(DCM_PixelMeasuresSequence, item, 0);
    if (c.good()) put(item, DCM_PixelSpacing, formatDSList(attrs[0].pixel_spacing, 2));
    if (c.good()) put(item, DCM_SliceThickness, formatDS(attrs[0].slice_thickness));
    if (c.good()) c = shared->findOrCreateSequenceItem(DCM_PlaneOrientationSequence, item, 0);
    if (c.good()) put(item, DCM_ImageOrientationPatient, formatDSList(attrs[0].image_orientation, 6));
    if (c.good()) c = shared->findOrCreateSequenceItem(DCM_PixelValueTransformationSequence, item, 0);
    if (c.good()) put(item, DCM_RescaleIntercept, formatDS(attrs[0].rescale_intercept));
    if (c.good()) put(item, DCM_RescaleSlope, formatDS(attrs[0].rescale_slope));
    if (c.good()) put(item, DCM_RescaleType, "US");
    if (c.good()) c = shared->findOrCreateSequenceItem(DCM_MRImageFrameTypeSequence, item, 0);
    if (c.good()) put(item, DCM_FrameType, "ORIGINAL\\PRIMARY\\OTHER\\NONE");
    // Per frame: position, phase, place in the stack and in time.
    for (int32_t f = 0; f < frames && c.good(); ++f) {
        const asn_dicom_frame_attrs &a = attrs[f];
        DcmItem *pf = nullptr;
        c = ds->findOrCreateSequenceItem(DCM_PerFrameFunctionalGroupsSequence, pf, -2);
        if (c.good()) c = pf->findOrCreateSequenceItem(DCM_FrameContentSequence, item, 0);
        if (c.good()) put(item, DCM_StackID, "1");
        if (c.good() && a.in_stack_position > 0) c = item->putAndInsertUint32(DCM_InStackPositionNumber, Uint32(a.in_stack_position));
        if (c.good() && a.temporal_position_index > 0) c = item->putAndInsertUint32(DCM_TemporalPositionIndex, Uint32(a.temporal_position_index));
        if (c.good()) c = pf->findOrCreateSequenceItem(DCM_PlanePositionSequence, item, 0);
        if (c.good()) put(item, DCM_ImagePositionPatient, formatDSList(a.image_position, 3));
        if (c.good() && a.has_trigger_time) {
            c = pf->findOrCreateSequenceItem(DCM_CardiacSynchronizationSequence, item, 0);
            if (c.good()) c = item->putAndInsertFloat64(DCM_NominalCardiacTriggerDelayTime, a.trigger_time);
        }
    }
    const size_t n = size_t(m->rows) * size_t(m->columns) * size_t(frames);
    if (c.good()) c = ds->putAndInsertUint16Array(DCM_PixelData, pixels, static_cast<unsigned long>(n));
    if (c.bad()) return fail(err, errlen, ASN_DICOM_ERR_INVALID, std::string("cannot build the data set: ") + c.text());
    c = file.saveFile(path, EXS_LittleEndianExplicit);
    if (c.bad()) return fail(err, errlen, ASN_DICOM_ERR_WRITE, std::string("cannot write: ") + c.text());
    return ASN_DICOM_OK;
}
