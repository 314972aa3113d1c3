// Writing classic single-frame MR images (the phantom's DICOM output and test fixtures).
#include "internal.h"

#include <algorithm>
#include <cstring>

using namespace asn_dicom;

namespace {

struct Writer {
    DcmDataset *ds;
    OFCondition status = EC_Normal;
    std::string failedTag;

    void str(const DcmTagKey &tag, const char *value) {
        if (empty(value)) return;
        put(tag, value);
    }
    void put(const DcmTagKey &tag, const std::string &value) {
        OFCondition c = ds->putAndInsertOFStringArray(tag, value.c_str());
        if (c.bad() && status.good()) {
            status = c;
            failedTag = DcmTag(tag).getTagName();
        }
    }
    void integer(const DcmTagKey &tag, long value) { put(tag, std::to_string(value)); }
    void ds1(const DcmTagKey &tag, double value) { put(tag, formatDS(value)); }
    void dsN(const DcmTagKey &tag, const double *values, int n) { put(tag, formatDSList(values, n)); }
    void us(const DcmTagKey &tag, Uint16 value) {
        OFCondition c = ds->putAndInsertUint16(tag, value);
        if (c.bad() && status.good()) {
            status = c;
            failedTag = DcmTag(tag).getTagName();
        }
    }
};

}  // namespace

extern "C" int asn_dicom_write_mr(const char *path, const asn_dicom_mr_image *m, const uint16_t *pixels,
                                  char *err, size_t errlen) {
    asn_dicom_init();
    if (path == nullptr || m == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "null argument");
    if (empty(m->sop_instance_uid) || empty(m->study_instance_uid) || empty(m->series_instance_uid)) {
        return fail(err, errlen, ASN_DICOM_ERR_INVALID, "SOP Instance, Study and Series Instance UIDs are required");
    }
    if (m->rows <= 0 || m->columns <= 0 || m->rows > 65535 || m->columns > 65535) {
        return fail(err, errlen, ASN_DICOM_ERR_INVALID, "rows and columns must be 1...65535");
    }
    if (!m->omit_pixel_data && pixels == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "no pixels");

    DcmFileFormat file;
    Writer w{file.getDataset()};
    w.put(DCM_SpecificCharacterSet, "ISO_IR 100");
    w.put(DCM_ImageType, empty(m->image_type) ? "ORIGINAL\\PRIMARY\\OTHER" : m->image_type);
    w.put(DCM_SOPClassUID, empty(m->sop_class_uid) ? UID_MRImageStorage : m->sop_class_uid);
    w.str(DCM_SOPInstanceUID, m->sop_instance_uid);
    w.str(DCM_StudyDate, m->study_date);
    w.str(DCM_SeriesDate, m->study_date);
    w.str(DCM_StudyTime, m->study_time);
    w.str(DCM_SeriesTime, m->study_time);
    w.put(DCM_AccessionNumber, empty(m->accession_number) ? "" : m->accession_number);
    w.put(DCM_ReferringPhysicianName, "");
    w.put(DCM_Modality, "MR");
    w.str(DCM_Manufacturer, m->manufacturer);
    w.str(DCM_StudyDescription, m->study_description);
    w.str(DCM_SeriesDescription, m->series_description);
    w.str(DCM_PatientName, m->patient_name);
    w.str(DCM_PatientID, m->patient_id);
    w.put(DCM_PatientBirthDate, "");  // type 2: present, may be empty
    w.str(DCM_PatientSex, m->patient_sex);
    if (m->patient_size > 0) w.ds1(DCM_PatientSize, m->patient_size);
    if (m->patient_weight > 0) w.ds1(DCM_PatientWeight, m->patient_weight);
    w.put(DCM_BodyPartExamined, "HEART");
    w.put(DCM_ScanningSequence, "GR");
    w.put(DCM_SequenceVariant, "SS");
    w.put(DCM_ScanOptions, "CG");
    w.put(DCM_MRAcquisitionType, "2D");
    w.ds1(DCM_SliceThickness, m->slice_thickness);
    if (m->repetition_time > 0) w.ds1(DCM_RepetitionTime, m->repetition_time);
    if (m->echo_time > 0) w.ds1(DCM_EchoTime, m->echo_time);
    w.ds1(DCM_EchoTrainLength, 1);
    if (m->magnetic_field_strength > 0) w.ds1(DCM_MagneticFieldStrength, m->magnetic_field_strength);
    if (m->spacing_between_slices > 0) w.ds1(DCM_SpacingBetweenSlices, m->spacing_between_slices);
    if (m->has_trigger_time) w.ds1(DCM_TriggerTime, m->trigger_time);
    if (m->heart_rate > 0) w.integer(DCM_HeartRate, long(m->heart_rate + 0.5));
    if (m->cardiac_number_of_images > 0) w.integer(DCM_CardiacNumberOfImages, m->cardiac_number_of_images);
    if (m->flip_angle > 0) w.ds1(DCM_FlipAngle, m->flip_angle);
    w.put(DCM_PatientPosition, "HFS");
    w.str(DCM_StudyInstanceUID, m->study_instance_uid);
    w.str(DCM_SeriesInstanceUID, m->series_instance_uid);
    w.str(DCM_StudyID, m->study_id);
    w.integer(DCM_SeriesNumber, m->series_number);
    w.integer(DCM_AcquisitionNumber, m->acquisition_number);
    w.integer(DCM_InstanceNumber, m->instance_number);
    if (m->has_image_position) w.dsN(DCM_ImagePositionPatient, m->image_position, 3);
    if (m->has_image_orientation) w.dsN(DCM_ImageOrientationPatient, m->image_orientation, 6);
    w.str(DCM_FrameOfReferenceUID, m->frame_of_reference_uid);
    w.put(DCM_PositionReferenceIndicator, "");
    w.ds1(DCM_SliceLocation, m->slice_location);
    if (!m->omit_pixel_data) {
        w.us(DCM_SamplesPerPixel, 1);
        w.put(DCM_PhotometricInterpretation, "MONOCHROME2");
        w.us(DCM_Rows, Uint16(m->rows));
        w.us(DCM_Columns, Uint16(m->columns));
        if (m->has_pixel_spacing) w.dsN(DCM_PixelSpacing, m->pixel_spacing, 2);
        w.us(DCM_BitsAllocated, 16);
        w.us(DCM_BitsStored, 16);
        w.us(DCM_HighBit, 15);
        w.us(DCM_PixelRepresentation, 0);
        const size_t n = size_t(m->rows) * size_t(m->columns);
        const auto range = std::minmax_element(pixels, pixels + n);
        double lo = *range.first, hi = *range.second;
        double slope = m->has_rescale ? m->rescale_slope : 1, inter = m->has_rescale ? m->rescale_intercept : 0;
        w.ds1(DCM_WindowCenter, ((lo + hi) / 2) * slope + inter);
        w.ds1(DCM_WindowWidth, std::max(1.0, (hi - lo) * slope));
        if (m->has_rescale) {
            w.ds1(DCM_RescaleIntercept, m->rescale_intercept);
            w.ds1(DCM_RescaleSlope, m->rescale_slope);
            w.put(DCM_RescaleType, "US");
        }
        if (w.status.good()) {
            OFCondition c = w.ds->putAndInsertUint16Array(DCM_PixelData, pixels, static_cast<unsigned long>(n));
            if (c.bad()) {
                w.status = c;
                w.failedTag = "PixelData";
            }
        }
    } else if (m->has_pixel_spacing) {
        w.dsN(DCM_PixelSpacing, m->pixel_spacing, 2);
    }
    if (w.status.bad()) {
        return fail(err, errlen, ASN_DICOM_ERR_INVALID, "cannot set " + w.failedTag + ": " + w.status.text());
    }
    OFCondition c = file.saveFile(path, EXS_LittleEndianExplicit);
    if (c.bad()) return fail(err, errlen, ASN_DICOM_ERR_WRITE, std::string("cannot write: ") + c.text());
    return ASN_DICOM_OK;
}
