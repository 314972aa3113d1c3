// Reading image headers and stored pixel values.
#include "internal.h"

#include <cstring>
#include <vector>

using namespace asn_dicom;

namespace {

void getString(DcmItem *ds, const DcmTagKey &tag, char *dst, size_t size) {
    OFString v;
    dst[0] = '\0';
    // The whole value (all components), trimmed as DCMTK normalises it.
    if (ds->findAndGetOFStringArray(tag, v).good()) copyField(dst, size, v);
}

bool getDouble(DcmItem *ds, const DcmTagKey &tag, double *out, unsigned long pos = 0) {
    Float64 v = 0;
    if (ds->findAndGetFloat64(tag, v, pos).bad()) return false;
    *out = v;
    return true;
}

bool getDoubles(DcmItem *ds, const DcmTagKey &tag, double *out, int count) {
    for (int i = 0; i < count; ++i) {
        if (!getDouble(ds, tag, out + i, i)) return false;
    }
    return true;
}

bool getInt(DcmItem *ds, const DcmTagKey &tag, int32_t *out) {
    Sint32 v = 0;
    if (ds->findAndGetSint32(tag, v).good()) {
        *out = v;
        return true;
    }
    Uint16 u = 0;
    if (ds->findAndGetUint16(tag, u).good()) {
        *out = u;
        return true;
    }
    return false;
}

}  // namespace

extern "C" int asn_dicom_read_header(const char *path, asn_dicom_header *out, char *err, size_t errlen) {
    if (path == nullptr || out == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "null argument");
    memset(out, 0, sizeof *out);
    DcmFileFormat file;
    int rc = loadFile(file, path, true, err, errlen);
    if (rc != ASN_DICOM_OK) return rc;
    DcmDataset *ds = file.getDataset();
    DcmMetaInfo *meta = file.getMetaInfo();

    getString(ds, DCM_SOPClassUID, out->sop_class_uid, sizeof out->sop_class_uid);
    if (out->sop_class_uid[0] == '\0' && meta != nullptr) {
        getString(meta, DCM_MediaStorageSOPClassUID, out->sop_class_uid, sizeof out->sop_class_uid);
    }
    getString(ds, DCM_SOPInstanceUID, out->sop_instance_uid, sizeof out->sop_instance_uid);
    if (out->sop_class_uid[0] == '\0' && out->sop_instance_uid[0] == '\0') {
        return fail(err, errlen, ASN_DICOM_ERR_NOT_DICOM, "not a DICOM object (no SOP Class or SOP Instance UID)");
    }
    getString(ds, DCM_StudyInstanceUID, out->study_instance_uid, sizeof out->study_instance_uid);
    getString(ds, DCM_SeriesInstanceUID, out->series_instance_uid, sizeof out->series_instance_uid);
    getString(ds, DCM_FrameOfReferenceUID, out->frame_of_reference_uid, sizeof out->frame_of_reference_uid);
    copyField(out->transfer_syntax_uid, sizeof out->transfer_syntax_uid,
              DcmXfer(ds->getOriginalXfer()).getXferID());
    getString(ds, DCM_Modality, out->modality, sizeof out->modality);
    getString(ds, DCM_SeriesDescription, out->series_description, sizeof out->series_description);
    getString(ds, DCM_PhotometricInterpretation, out->photometric, sizeof out->photometric);
    getString(ds, DCM_Manufacturer, out->manufacturer, sizeof out->manufacturer);
    getString(ds, DCM_PatientID, out->patient_id, sizeof out->patient_id);
    getString(ds, DCM_PatientName, out->patient_name, sizeof out->patient_name);
    getString(ds, DCM_AccessionNumber, out->accession_number, sizeof out->accession_number);
    getString(ds, DCM_StudyID, out->study_id, sizeof out->study_id);
    getString(ds, DCM_StudyDate, out->study_date, sizeof out->study_date);
    getString(ds, DCM_StudyDescription, out->study_description, sizeof out->study_description);

    out->has_series_number = getInt(ds, DCM_SeriesNumber, &out->series_number);
    out->has_instance_number = getInt(ds, DCM_InstanceNumber, &out->instance_number);
    getInt(ds, DCM_Rows, &out->rows);
    getInt(ds, DCM_Columns, &out->columns);
    getInt(ds, DCM_BitsAllocated, &out->bits_allocated);
    getInt(ds, DCM_BitsStored, &out->bits_stored);
    getInt(ds, DCM_HighBit, &out->high_bit);
    getInt(ds, DCM_PixelRepresentation, &out->pixel_representation);
    out->samples_per_pixel = 1;
    getInt(ds, DCM_SamplesPerPixel, &out->samples_per_pixel);
    out->number_of_frames = 1;
    getInt(ds, DCM_NumberOfFrames, &out->number_of_frames);
    out->has_pixel_data = ds->tagExists(DCM_PixelData) ? 1 : 0;

    out->has_image_position = getDoubles(ds, DCM_ImagePositionPatient, out->image_position, 3);
    out->has_image_orientation = getDoubles(ds, DCM_ImageOrientationPatient, out->image_orientation, 6);
    out->has_pixel_spacing = getDoubles(ds, DCM_PixelSpacing, out->pixel_spacing, 2);
    out->has_slice_thickness = getDouble(ds, DCM_SliceThickness, &out->slice_thickness);
    out->has_spacing_between_slices = getDouble(ds, DCM_SpacingBetweenSlices, &out->spacing_between_slices);
    out->rescale_slope = 1;
    out->rescale_intercept = 0;
    bool slope = getDouble(ds, DCM_RescaleSlope, &out->rescale_slope);
    bool inter = getDouble(ds, DCM_RescaleIntercept, &out->rescale_intercept);
    out->has_rescale = slope || inter;
    if (out->rescale_slope == 0) out->rescale_slope = 1;
    out->has_trigger_time = getDouble(ds, DCM_TriggerTime, &out->trigger_time);
    getInt(ds, DCM_CardiacNumberOfImages, &out->cardiac_number_of_images);
    {
        int32_t hr = 0;
        if (getInt(ds, DCM_HeartRate, &hr)) {
            out->heart_rate = hr;
            out->has_heart_rate = 1;
        }
    }
    out->has_patient_size = getDouble(ds, DCM_PatientSize, &out->patient_size);
    out->has_patient_weight = getDouble(ds, DCM_PatientWeight, &out->patient_weight);

    // A file cut short inside its pixel data still parses when values are left on disk:
    // check that the pixel data can be read in full.
    if (out->has_pixel_data) {
        DcmElement *px = nullptr;
        if (ds->findAndGetElement(DCM_PixelData, px).good() && px != nullptr) {
            OFCondition c = px->loadAllDataIntoMemory();
            if (c.bad()) {
                return fail(err, errlen, ASN_DICOM_ERR_TRUNCATED,
                            std::string("the file is truncated: its pixel data cannot be read (") + c.text() + ")");
            }
        }
    }
    return ASN_DICOM_OK;
}

extern "C" int asn_dicom_read_pixels(const char *path, int32_t *out, size_t count, char *err, size_t errlen) {
    if (path == nullptr || out == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "null argument");
    DcmFileFormat file;
    int rc = loadFile(file, path, false, err, errlen);
    if (rc != ASN_DICOM_OK) return rc;
    DcmDataset *ds = file.getDataset();
    if (!ds->tagExists(DCM_PixelData)) return fail(err, errlen, ASN_DICOM_ERR_NO_PIXELS, "no Pixel Data");
    int32_t rows = 0, cols = 0, alloc = 0, stored = 0, high = -1, rep = 0, samples = 1, frames = 1;
    getInt(ds, DCM_Rows, &rows);
    getInt(ds, DCM_Columns, &cols);
    getInt(ds, DCM_BitsAllocated, &alloc);
    getInt(ds, DCM_BitsStored, &stored);
    getInt(ds, DCM_HighBit, &high);
    getInt(ds, DCM_PixelRepresentation, &rep);
    getInt(ds, DCM_SamplesPerPixel, &samples);
    getInt(ds, DCM_NumberOfFrames, &frames);
    if (rows <= 0 || cols <= 0) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "Rows or Columns missing or zero");
    if (samples != 1) return fail(err, errlen, ASN_DICOM_ERR_UNSUPPORTED, "colour images (Samples per Pixel > 1) are not supported");
    if (frames < 1) frames = 1;
    if (alloc != 8 && alloc != 16) {
        return fail(err, errlen, ASN_DICOM_ERR_UNSUPPORTED, "Bits Allocated " + std::to_string(alloc) + " is not supported (8 or 16)");
    }
    if (stored <= 0 || stored > alloc) stored = alloc;
    if (high < stored - 1 || high >= alloc) high = stored - 1;
    const size_t n = size_t(rows) * size_t(cols) * size_t(frames);
    if (count < n) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "output buffer too small");

    if (DcmXfer(ds->getOriginalXfer()).isEncapsulated()) {
        OFCondition c = ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
        if (c.bad() || !ds->canWriteXfer(EXS_LittleEndianExplicit)) {
            return fail(err, errlen, ASN_DICOM_ERR_UNSUPPORTED,
                        std::string("cannot decompress transfer syntax ") + DcmXfer(ds->getOriginalXfer()).getXferName() +
                            (c.bad() ? std::string(" (") + c.text() + ")" : std::string()));
        }
    }
    DcmElement *px = nullptr;
    if (ds->findAndGetElement(DCM_PixelData, px).bad() || px == nullptr) {
        return fail(err, errlen, ASN_DICOM_ERR_NO_PIXELS, "no Pixel Data");
    }
    const unsigned shift = unsigned(high + 1 - stored);
    const uint32_t mask = stored >= 32 ? 0xffffffffu : ((1u << stored) - 1u);
    const uint32_t sign = 1u << (stored - 1);
    auto convert = [&](uint32_t raw) -> int32_t {
        uint32_t v = (raw >> shift) & mask;
        if (rep == 1 && (v & sign)) return int32_t(v) - int32_t(mask) - 1;
        return int32_t(v);
    };
    const size_t bytes = px->getLength();
    if (alloc == 16) {
        Uint16 *data = nullptr;
        OFCondition c = px->getUint16Array(data);
        if (c.bad() || data == nullptr) return fail(err, errlen, ASN_DICOM_ERR_TRUNCATED, std::string("cannot read pixel data (") + c.text() + ")");
        if (bytes < n * 2) {
            return fail(err, errlen, ASN_DICOM_ERR_TRUNCATED,
                        "pixel data holds " + std::to_string(bytes) + " bytes but " + std::to_string(n * 2) + " are needed");
        }
        for (size_t i = 0; i < n; ++i) out[i] = convert(data[i]);
    } else {
        Uint8 *data = nullptr;
        OFCondition c = px->getUint8Array(data);
        if (c.bad() || data == nullptr) {
            Uint16 *words = nullptr;  // 8-bit samples inside an OW element
            if (px->getUint16Array(words).bad() || words == nullptr) {
                return fail(err, errlen, ASN_DICOM_ERR_TRUNCATED, std::string("cannot read pixel data (") + c.text() + ")");
            }
            data = reinterpret_cast<Uint8 *>(words);
        }
        if (bytes < n) {
            return fail(err, errlen, ASN_DICOM_ERR_TRUNCATED,
                        "pixel data holds " + std::to_string(bytes) + " bytes but " + std::to_string(n) + " are needed");
        }
        for (size_t i = 0; i < n; ++i) out[i] = convert(data[i]);
    }
    return ASN_DICOM_OK;
}
