// Writing a derived RGB picture (the QC picture) as a Secondary Capture image in the source
// study, with DCMTK's dataset API: patient and study copied from a source image, a new series,
// Image Type DERIVED\SECONDARY, the shown images in the Source Image Sequence.
#include "internal.h"

#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmiod/modhelp.h"

#include <ctime>
#include <string>

using namespace asn_dicom;

extern "C" int asn_dicom_write_sc(const char *path, const asn_dicom_sc_request *r, const uint8_t *rgb, char *err,
                                  size_t errlen) {
    asn_dicom_init();
    if (path == nullptr || r == nullptr || rgb == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "null argument");
    if (r->rows <= 0 || r->columns <= 0 || r->rows > 65535 || r->columns > 65535) {
        return fail(err, errlen, ASN_DICOM_ERR_INVALID, "rows and columns must be 1...65535");
    }
    if (empty(r->source_file)) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "no source image file");
    if (r->source_count < 0 || (r->source_count > 0 && (r->source_sop_class_uids == nullptr || r->source_sop_instance_uids == nullptr))) {
        return fail(err, errlen, ASN_DICOM_ERR_INVALID, "bad source image references");
    }
    for (int i = 0; i < r->source_count; ++i) {
        if (empty(r->source_sop_class_uids[i]) || empty(r->source_sop_instance_uids[i])) {
            return fail(err, errlen, ASN_DICOM_ERR_INVALID, "source image " + std::to_string(i) + " has no SOP Class or Instance UID");
        }
    }
    DcmFileFormat source;
    int rc = loadFile(source, r->source_file, true, err, errlen);
    if (rc != ASN_DICOM_OK) return rc;

    DcmFileFormat out;
    DcmDataset *d = out.getDataset();
    DcmModuleHelpers::copyPatientModule(*source.getDataset(), *d);
    DcmModuleHelpers::copyPatientStudyModule(*source.getDataset(), *d);
    DcmModuleHelpers::copyGeneralStudyModule(*source.getDataset(), *d);

    char uid[100];
    OFCondition c;
    auto put = [&](const DcmTagKey &tag, const std::string &value) {
        if (c.good()) c = d->putAndInsertString(tag, value.c_str());
    };
    auto putU16 = [&](const DcmTagKey &tag, Uint16 value) {
        if (c.good()) c = d->putAndInsertUint16(tag, value);
    };
    put(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
    put(DCM_SOPInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT));
    put(DCM_SeriesInstanceUID, empty(r->series_instance_uid) ? dcmGenerateUniqueIdentifier(uid, SITE_SERIES_UID_ROOT) : r->series_instance_uid);
    put(DCM_Modality, "OT");
    put(DCM_SeriesNumber, std::to_string(r->series_number > 0 ? r->series_number : 1));
    put(DCM_SeriesDescription, empty(r->series_description) ? "autosam QC" : r->series_description);
    put(DCM_InstanceNumber, std::to_string(r->instance_number > 0 ? r->instance_number : 1));
    put(DCM_Manufacturer, empty(r->manufacturer) ? "autosam" : r->manufacturer);
    if (!empty(r->software_version)) put(DCM_SoftwareVersions, r->software_version);
    put(DCM_ConversionType, "WSD");
    put(DCM_ImageType, "DERIVED\\SECONDARY");
    put(DCM_PatientOrientation, "");
    put(DCM_Laterality, "");  // Type 2C (General Series): the heart is not a paired organ
    put(DCM_BurnedInAnnotation, "YES");
    put(DCM_LossyImageCompression, "00");
    put(DCM_DerivationDescription, empty(r->derivation_description) ? "autosam QC picture" : r->derivation_description);
    OFString date, time;
    DcmDate::getCurrentDate(date);
    DcmTime::getCurrentTime(time);
    put(DCM_ContentDate, date.c_str());
    put(DCM_ContentTime, time.c_str());
    putU16(DCM_SamplesPerPixel, 3);
    put(DCM_PhotometricInterpretation, "RGB");
    putU16(DCM_PlanarConfiguration, 0);
    putU16(DCM_Rows, Uint16(r->rows));
    putU16(DCM_Columns, Uint16(r->columns));
    putU16(DCM_BitsAllocated, 8);
    putU16(DCM_BitsStored, 8);
    putU16(DCM_HighBit, 7);
    putU16(DCM_PixelRepresentation, 0);
    if (c.bad()) return fail(err, errlen, ASN_DICOM_ERR_INVALID, std::string("cannot set the attributes: ") + c.text());
    for (int i = 0; i < r->source_count; ++i) {
        DcmItem *item = nullptr;
        c = d->findOrCreateSequenceItem(DCM_SourceImageSequence, item, -2);
        if (c.bad() || item == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "cannot add a source image reference");
        item->putAndInsertString(DCM_ReferencedSOPClassUID, r->source_sop_class_uids[i]);
        item->putAndInsertString(DCM_ReferencedSOPInstanceUID, r->source_sop_instance_uids[i]);
        if (r->source_frame_numbers != nullptr && r->source_frame_numbers[i] > 0) {
            item->putAndInsertString(DCM_ReferencedFrameNumber, std::to_string(r->source_frame_numbers[i]).c_str());
        }
    }
    const size_t bytes = size_t(r->rows) * size_t(r->columns) * 3;
    c = d->putAndInsertUint8Array(DCM_PixelData, rgb, OFstatic_cast(unsigned long, bytes));
    if (c.bad()) return fail(err, errlen, ASN_DICOM_ERR_INVALID, std::string("cannot set the pixel data: ") + c.text());
    c = out.saveFile(path, EXS_LittleEndianExplicit);
    if (c.bad()) return fail(err, errlen, ASN_DICOM_ERR_WRITE, std::string("cannot write the picture: ") + c.text());
    return ASN_DICOM_OK;
}
