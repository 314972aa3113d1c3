// Helpers shared by the CDicom sources (C++ only; not part of the public C API).
#ifndef ASN_DICOM_INTERNAL_H
#define ASN_DICOM_INTERNAL_H

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dctk.h"

#include <string>

#include "asn_dicom.h"

namespace asn_dicom {

/// Copies `message` into the caller's buffer (truncating, always NUL-terminated).
void setError(char *err, size_t errlen, const std::string &message);

/// Returns `code` after writing `message` to the error buffer.
int fail(char *err, size_t errlen, int code, const std::string &message);

/// Copies a string into a fixed-size field (truncating).
void copyField(char *dst, size_t size, const OFString &value);

/// A decimal string (DICOM DS, at most 16 characters) holding `value` as precisely as fits.
std::string formatDS(double value);

/// `a\b\c` of several DS values.
std::string formatDSList(const double *values, int count);

/// Loads a file (pixel data left on disk when `headerOnly`). Maps DCMTK's conditions to our
/// codes; on success returns ASN_DICOM_OK.
int loadFile(DcmFileFormat &file, const char *path, bool headerOnly, char *err, size_t errlen);

/// Whether a string is null or empty.
inline bool empty(const char *s) { return s == nullptr || s[0] == '\0'; }

}  // namespace asn_dicom

#endif
