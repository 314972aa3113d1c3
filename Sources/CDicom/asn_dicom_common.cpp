// Library set-up and helpers shared by the CDicom sources.
#include "internal.h"

#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"
#include "dcmtk/oflog/oflog.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace asn_dicom {

void setError(char *err, size_t errlen, const std::string &message) {
    if (err == nullptr || errlen == 0) return;
    size_t n = message.size() < errlen - 1 ? message.size() : errlen - 1;
    memcpy(err, message.data(), n);
    err[n] = '\0';
}

int fail(char *err, size_t errlen, int code, const std::string &message) {
    setError(err, errlen, message);
    return code;
}

void copyField(char *dst, size_t size, const OFString &value) {
    size_t n = value.length() < size - 1 ? value.length() : size - 1;
    memcpy(dst, value.c_str(), n);
    dst[n] = '\0';
}

std::string formatDS(double value) {
    if (value == 0 || !std::isfinite(value)) return "0";
    // The most significant digits that fit in 16 characters, trailing zeros trimmed by %g.
    char buf[64];
    for (int precision = 16; precision >= 1; --precision) {
        snprintf(buf, sizeof buf, "%.*g", precision, value);
        if (strlen(buf) <= 16) return buf;
    }
    snprintf(buf, sizeof buf, "%.6g", value);
    return buf;
}

std::string formatDSList(const double *values, int count) {
    std::string out;
    for (int i = 0; i < count; ++i) {
        if (i > 0) out += "\\";
        out += formatDS(values[i]);
    }
    return out;
}

static bool hasPreamble(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == nullptr) return false;
    char magic[4] = {0, 0, 0, 0};
    bool ok = fseek(f, 128, SEEK_SET) == 0 && fread(magic, 1, 4, f) == 4;
    fclose(f);
    return ok && memcmp(magic, "DICM", 4) == 0;
}

int loadFile(DcmFileFormat &file, const char *path, bool headerOnly, char *err, size_t errlen) {
    asn_dicom_init();
    if (!dcmDataDict.isDictionaryLoaded()) {
        return fail(err, errlen, ASN_DICOM_ERR_IO,
                    "DCMTK's data dictionary is not loaded (install libdcmtk17 or set DCMDICTPATH)");
    }
    FILE *probe = fopen(path, "rb");
    if (probe == nullptr) return fail(err, errlen, ASN_DICOM_ERR_IO, std::string("cannot open: ") + strerror(errno));
    fclose(probe);
    // Files without the DICM preamble are accepted only if they parse as a bare data set.
    const bool preamble = hasPreamble(path);
    const Uint32 maxRead = headerOnly ? 256 : DCM_MaxReadLength;
    OFCondition c = file.loadFile(path, EXS_Unknown, EGL_noChange, maxRead,
                                  preamble ? ERM_fileOnly : ERM_autoDetect);
    if (c.good()) return ASN_DICOM_OK;
    std::string why = c.text();
    // DCMTK reports a file that ends inside an element as a stream error.
    if (c == EC_StreamNotifyClient || c == EC_EndOfStream || c == EC_InvalidStream ||
        why.find("remaining") != std::string::npos || why.find("Premature") != std::string::npos) {
        return fail(err, errlen, preamble ? ASN_DICOM_ERR_TRUNCATED : ASN_DICOM_ERR_NOT_DICOM,
                    preamble ? "the file ends before its data does (" + why + ")" : "not a DICOM file (" + why + ")");
    }
    // With the DICM preamble the file claims to be DICOM: its damage is an error, not a
    // reason to skip it.
    if (preamble) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "corrupt DICOM file (" + why + ")");
    return fail(err, errlen, ASN_DICOM_ERR_NOT_DICOM, "not a DICOM file (" + why + ")");
}

}  // namespace asn_dicom

extern "C" void asn_dicom_init(void) {
    static std::once_flag once;
    std::call_once(once, [] {
        // DCMTK logs warnings to stderr through oflog unless configured; we report errors
        // through return codes instead.
        OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
        DJDecoderRegistration::registerCodecs();
        DJLSDecoderRegistration::registerCodecs();
        DcmRLEDecoderRegistration::registerCodecs();
    });
}
