// Reading DICOM SEG back through dcmseg: geometry, segments and unpacked frames.
#include "internal.h"

#include "dcmtk/dcmfg/fgderimg.h"
#include "dcmtk/dcmfg/fgpixmsr.h"
#include "dcmtk/dcmfg/fgplanor.h"
#include "dcmtk/dcmfg/fgplanpo.h"
#include "dcmtk/dcmfg/fgseg.h"
#include "dcmtk/dcmseg/segdoc.h"
#include "dcmtk/dcmseg/segment.h"
#include "dcmtk/dcmseg/segutils.h"

#include <cstring>
#include <memory>

using namespace asn_dicom;

struct asn_dicom_seg_handle {
    std::unique_ptr<DcmSegmentation> seg;
    Uint16 rows = 0, columns = 0;
};

namespace {

void copyCode(CodeSequenceMacro &code, asn_dicom_code &out) {
    OFString v;
    code.getCodeValue(v);
    copyField(out.value, sizeof out.value, v);
    code.getCodingSchemeDesignator(v);
    copyField(out.scheme, sizeof out.scheme, v);
    code.getCodeMeaning(v);
    copyField(out.meaning, sizeof out.meaning, v);
}

}  // namespace

extern "C" int asn_dicom_seg_open(const char *path, asn_dicom_seg_handle **out, char *err, size_t errlen) {
    asn_dicom_init();
    if (path == nullptr || out == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "null argument");
    *out = nullptr;
    DcmFileFormat file;
    int rc = loadFile(file, path, false, err, errlen);
    if (rc != ASN_DICOM_OK) return rc;
    OFString sopClass;
    file.getDataset()->findAndGetOFString(DCM_SOPClassUID, sopClass);
    if (sopClass != UID_SegmentationStorage) {
        return fail(err, errlen, ASN_DICOM_ERR_UNSUPPORTED, "not a DICOM SEG (SOP Class " + std::string(sopClass.c_str()) + ")");
    }
    DcmSegmentation *seg = nullptr;
    OFCondition c = DcmSegmentation::loadDataset(*file.getDataset(), seg);
    if (c.bad() || seg == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, std::string("cannot read the SEG: ") + c.text());
    auto *h = new asn_dicom_seg_handle{std::unique_ptr<DcmSegmentation>(seg)};
    file.getDataset()->findAndGetUint16(DCM_Rows, h->rows);
    file.getDataset()->findAndGetUint16(DCM_Columns, h->columns);
    *out = h;
    return ASN_DICOM_OK;
}

extern "C" void asn_dicom_seg_close(asn_dicom_seg_handle *h) { delete h; }

extern "C" int asn_dicom_seg_get_info(asn_dicom_seg_handle *h, asn_dicom_seg_info *info, char *err, size_t errlen) {
    if (h == nullptr || info == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "null argument");
    memset(info, 0, sizeof *info);
    DcmSegmentation &seg = *h->seg;
    info->rows = h->rows;
    info->columns = h->columns;
    info->frames = int32_t(seg.getNumberOfFrames());
    info->segments = int32_t(seg.getNumberOfSegments());
    info->binary = seg.getSegmentationType() == DcmSegTypes::ST_BINARY ? 1 : 0;
    OFBool perFrame = OFFalse;
    FGInterface &fg = seg.getFunctionalGroups();
    if (auto *o = OFstatic_cast(FGPlaneOrientationPatient *, fg.get(0, DcmFGTypes::EFG_PLANEORIENTPATIENT, perFrame))) {
        double *v = info->orientation;
        info->has_orientation = o->getImageOrientationPatient(v[0], v[1], v[2], v[3], v[4], v[5]).good();
    }
    if (auto *m = OFstatic_cast(FGPixelMeasures *, fg.get(0, DcmFGTypes::EFG_PIXELMEASURES, perFrame))) {
        info->has_pixel_spacing = m->getPixelSpacing(info->pixel_spacing[0], 0).good() &&
                                  m->getPixelSpacing(info->pixel_spacing[1], 1).good();
        m->getSpacingBetweenSlices(info->spacing_between_slices);
        m->getSliceThickness(info->slice_thickness);
    }
    OFString v;
    seg.getFrameOfReference().getFrameOfReferenceUID(v);
    copyField(info->frame_of_reference_uid, sizeof info->frame_of_reference_uid, v);
    seg.getStudy().getStudyInstanceUID(v);
    copyField(info->study_instance_uid, sizeof info->study_instance_uid, v);
    seg.getSeries().getSeriesInstanceUID(v);
    copyField(info->series_instance_uid, sizeof info->series_instance_uid, v);
    seg.getSOPCommon().getSOPInstanceUID(v);
    copyField(info->sop_instance_uid, sizeof info->sop_instance_uid, v);
    return ASN_DICOM_OK;
}

extern "C" int asn_dicom_seg_get_segment(asn_dicom_seg_handle *h, int32_t number, asn_dicom_segment *out, char *err,
                                         size_t errlen) {
    if (h == nullptr || out == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "null argument");
    memset(out, 0, sizeof *out);
    DcmSegment *s = number > 0 ? h->seg->getSegment(size_t(number)) : nullptr;
    if (s == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "no segment " + std::to_string(number));
    OFString v;
    s->getSegmentLabel(v);
    copyField(out->label, sizeof out->label, v);
    s->getSegmentDescription(v);
    copyField(out->description, sizeof out->description, v);
    copyCode(s->getSegmentedPropertyCategoryCode(), out->category);
    copyCode(s->getSegmentedPropertyTypeCode(), out->type);
    Uint16 L = 0, a = 0, b = 0;
    if (s->getRecommendedDisplayCIELabValue(L, a, b).good()) {
        out->cielab[0] = L;
        out->cielab[1] = a;
        out->cielab[2] = b;
    }
    out->label_value = uint8_t(number);
    return ASN_DICOM_OK;
}

extern "C" int asn_dicom_seg_get_frame(asn_dicom_seg_handle *h, int32_t index, asn_dicom_seg_frame *out,
                                       uint8_t *pixels, size_t count, char *err, size_t errlen) {
    if (h == nullptr || out == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "null argument");
    memset(out, 0, sizeof *out);
    DcmSegmentation &seg = *h->seg;
    if (index < 0 || size_t(index) >= seg.getNumberOfFrames()) {
        return fail(err, errlen, ASN_DICOM_ERR_INVALID, "no frame " + std::to_string(index));
    }
    FGInterface &fg = seg.getFunctionalGroups();
    OFBool perFrame = OFFalse;
    if (auto *s = OFstatic_cast(FGSegmentation *, fg.get(Uint32(index), DcmFGTypes::EFG_SEGMENTATION, perFrame))) {
        Uint16 n = 0;
        if (s->getReferencedSegmentNumber(n).good()) out->segment_number = n;
    }
    if (auto *p = OFstatic_cast(FGPlanePosPatient *, fg.get(Uint32(index), DcmFGTypes::EFG_PLANEPOSPATIENT, perFrame))) {
        out->has_position = p->getImagePositionPatient(out->position[0], out->position[1], out->position[2]).good();
    }
    if (auto *d = OFstatic_cast(FGDerivationImage *, fg.get(Uint32(index), DcmFGTypes::EFG_DERIVATIONIMAGE, perFrame))) {
        auto &items = d->getDerivationImageItems();
        if (!items.empty() && !items[0]->getSourceImageItems().empty()) {
            OFString uid;
            items[0]->getSourceImageItems()[0]->getImageSOPInstanceReference().getReferencedSOPInstanceUID(uid);
            copyField(out->referenced_sop_instance_uid, sizeof out->referenced_sop_instance_uid, uid);
        }
    }
    if (pixels == nullptr) return ASN_DICOM_OK;
    const Uint16 rows = h->rows, cols = h->columns;
    const size_t n = size_t(rows) * size_t(cols);
    if (count < n) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "output buffer too small");
    const DcmIODTypes::Frame *frame = seg.getFrame(size_t(index));
    if (frame == nullptr || frame->pixData == nullptr) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "frame data missing");
    if (seg.getSegmentationType() == DcmSegTypes::ST_BINARY) {
        std::unique_ptr<DcmIODTypes::Frame> unpacked(DcmSegUtils::unpackBinaryFrame(frame, rows, cols));
        if (!unpacked || unpacked->length < n) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "cannot unpack a binary frame");
        memcpy(pixels, unpacked->pixData, n);
    } else {
        if (frame->length < n) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "frame shorter than rows * columns");
        memcpy(pixels, frame->pixData, n);
    }
    return ASN_DICOM_OK;
}
