// autosam's wrapper over nifti2_io (NIfTI-Imaging/nifti_clib, Debian libniftiio-dev).
#include "asn_nifti.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <nifti2_io.h>

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void quiet_library(void) {
    // nifti2_io prints its own diagnostics to stderr at debug level >= 1; we report ours.
    nifti_set_debug_level(0);
}

static int supported_datatype(int dt) {
    switch (dt) {
    case DT_UINT8: case DT_INT8: case DT_INT16: case DT_UINT16:
    case DT_INT32: case DT_FLOAT32: case DT_FLOAT64:
        return 1;
    default:
        return 0;
    }
}

static void copy_dmat(const nifti_dmat44 *m, double out[16]) {
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) out[r * 4 + c] = m->m[r][c];
}

// The header version as stored (1 or 2; 0 for ANALYZE, -1 when unreadable). nifti2_io's
// nifti_type reports single-file NIfTI-2 as NIFTI1_1, so ask the header itself.
static int stored_version(const char *path) {
    int nver = -1;
    void *h = nifti_read_header(path, &nver, 1);
    if (h == NULL) return -1;
    free(h);
    return nver;
}

static void fill_header(const nifti_image *nim, int version, asn_nifti_header *hdr) {
    memset(hdr, 0, sizeof(*hdr));
    hdr->nifti_version = version;
    hdr->datatype = nim->datatype;
    hdr->nbyper = nim->nbyper;
    for (int i = 0; i < 8; i++) {
        hdr->dim[i] = nim->dim[i];
        hdr->pixdim[i] = nim->pixdim[i];
    }
    hdr->scl_slope = nim->scl_slope;
    hdr->scl_inter = nim->scl_inter;
    hdr->qform_code = nim->qform_code;
    hdr->sform_code = nim->sform_code;
    hdr->quatern_b = nim->quatern_b;
    hdr->quatern_c = nim->quatern_c;
    hdr->quatern_d = nim->quatern_d;
    hdr->qoffset_x = nim->qoffset_x;
    hdr->qoffset_y = nim->qoffset_y;
    hdr->qoffset_z = nim->qoffset_z;
    hdr->qfac = nim->qfac;
    copy_dmat(&nim->qto_xyz, hdr->qto_xyz);
    copy_dmat(&nim->sto_xyz, hdr->sto_xyz);
    hdr->xyz_units = nim->xyz_units;
    hdr->time_units = nim->time_units;
    hdr->toffset = nim->toffset;
    hdr->cal_min = nim->cal_min;
    hdr->cal_max = nim->cal_max;
    memcpy(hdr->descrip, nim->descrip, sizeof(hdr->descrip));
    hdr->descrip[sizeof(hdr->descrip) - 1] = 0;
    memcpy(hdr->intent_name, nim->intent_name, sizeof(hdr->intent_name));
    hdr->intent_name[sizeof(hdr->intent_name) - 1] = 0;
    hdr->intent_code = nim->intent_code;
}

static int file_exists(const char *path, int64_t *size) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (size) *size = (int64_t)st.st_size;
    return S_ISREG(st.st_mode);
}

// Opens and validates the header; returns NULL with err set on any problem.
static nifti_image *open_checked(const char *path, int64_t max_bytes, char *err, size_t errlen,
                                 int *code, int *version) {
    quiet_library();
    int64_t fsize = 0;
    if (!file_exists(path, &fsize)) {
        set_err(err, errlen, "no such file: %s", path);
        *code = 1;
        return NULL;
    }
    if (!nifti_is_gzfile(path) && fsize < 348) {
        set_err(err, errlen, "file too small to hold a NIfTI header (%lld bytes)",
                (long long)fsize);
        *code = 2;
        return NULL;
    }
    nifti_image *nim = nifti_image_read(path, 0);
    if (nim == NULL) {
        set_err(err, errlen, "not a readable NIfTI-1/NIfTI-2 header (corrupt, truncated or not NIfTI)");
        *code = 2;
        return NULL;
    }
    *version = stored_version(path);
    if (nim->nifti_type == NIFTI_FTYPE_ANALYZE || *version == 0) {
        nifti_image_free(nim);
        set_err(err, errlen, "ANALYZE 7.5 file: it carries no reliable orientation; convert it to NIfTI");
        *code = 3;
        return NULL;
    }
    if (nim->nifti_type == NIFTI_FTYPE_NIFTI1_2 || nim->nifti_type == NIFTI_FTYPE_NIFTI2_2) {
        nifti_image_free(nim);
        set_err(err, errlen, "two-file (.hdr/.img) NIfTI is not supported; use a single .nii or .nii.gz");
        *code = 3;
        return NULL;
    }
    if (!supported_datatype(nim->datatype)) {
        set_err(err, errlen, "unsupported voxel datatype %s (%d)",
                nifti_datatype_string(nim->datatype), nim->datatype);
        nifti_image_free(nim);
        *code = 4;
        return NULL;
    }
    int64_t ndim = nim->dim[0];
    if (ndim < 1 || ndim > 7) {
        set_err(err, errlen, "absurd number of dimensions dim[0]=%lld", (long long)ndim);
        nifti_image_free(nim);
        *code = 5;
        return NULL;
    }
    // Every used dimension must be positive; the product must not overflow nor exceed the limit.
    int64_t nvox = 1;
    for (int64_t i = 1; i <= ndim; i++) {
        int64_t d = nim->dim[i];
        if (d < 1) {
            set_err(err, errlen, "absurd dimension dim[%lld]=%lld", (long long)i, (long long)d);
            nifti_image_free(nim);
            *code = 5;
            return NULL;
        }
        if (nvox > INT64_MAX / d) {
            set_err(err, errlen, "absurd dimensions: voxel count overflows");
            nifti_image_free(nim);
            *code = 5;
            return NULL;
        }
        nvox *= d;
    }
    if (nim->nbyper <= 0 || nvox > INT64_MAX / nim->nbyper ||
        (max_bytes > 0 && nvox * nim->nbyper > max_bytes)) {
        set_err(err, errlen,
                "absurd dimensions: %lld voxels of %d bytes exceed the %lld-byte limit",
                (long long)nvox, nim->nbyper, (long long)max_bytes);
        nifti_image_free(nim);
        *code = 5;
        return NULL;
    }
    // An uncompressed file must hold all of its voxel data.
    if (!nifti_is_gzfile(path)) {
        int64_t need = nim->iname_offset + nvox * nim->nbyper;
        if (fsize < need) {
            set_err(err, errlen, "truncated file: %lld bytes on disk, %lld needed for the voxel data",
                    (long long)fsize, (long long)need);
            nifti_image_free(nim);
            *code = 6;
            return NULL;
        }
    }
    return nim;
}

int asn_nifti_read_header(const char *path, asn_nifti_header *hdr, char *err, size_t errlen) {
    int code = 0, version = 1;
    nifti_image *nim = open_checked(path, 0, err, errlen, &code, &version);
    if (nim == NULL) return code;
    fill_header(nim, version, hdr);
    nifti_image_free(nim);
    return 0;
}

int asn_nifti_read(const char *path, int64_t max_bytes, asn_nifti_header *hdr, void **data,
                   char *err, size_t errlen) {
    *data = NULL;
    int code = 0, version = 1;
    nifti_image *nim = open_checked(path, max_bytes, err, errlen, &code, &version);
    if (nim == NULL) return code;
    if (nim->datatype == DT_FLOAT32 || nim->datatype == DT_FLOAT64) {
        // nifti2_io's loader silently replaces NaN and infinite floats by 0, which would hide
        // damaged data: floats are read as stored (the caller refuses non-finite values).
        size_t bytes = (size_t)nim->nvox * (size_t)nim->nbyper;
        void *buf = malloc(bytes ? bytes : 1);
        znzFile fp = buf ? znzopen(nim->iname, "rb", nifti_is_gzfile(nim->iname)) : NULL;
        int ok = buf && !znz_isnull(fp) && znzseek(fp, (znz_off_t)nim->iname_offset, SEEK_SET) >= 0
            && znzread(buf, 1, bytes, fp) == bytes;
        if (!znz_isnull(fp)) Xznzclose(&fp);
        if (!ok) {
            free(buf);
            set_err(err, errlen, "voxel data truncated or corrupt (expected %lld bytes)", (long long)bytes);
            nifti_image_free(nim);
            return 6;
        }
        if (nim->byteorder != nifti_short_order()) {
            if (nim->nbyper == 4) nifti_swap_4bytes((int64_t)nim->nvox, buf);
            else nifti_swap_8bytes((int64_t)nim->nvox, buf);
        }
        fill_header(nim, version, hdr);
        *data = buf;
        nifti_image_free(nim);
        return 0;
    }
    if (nifti_image_load(nim) != 0 || nim->data == NULL) {
        set_err(err, errlen, "voxel data truncated or corrupt (expected %lld bytes)",
                (long long)(nim->nvox * nim->nbyper));
        nifti_image_free(nim);
        return 6;
    }
    fill_header(nim, version, hdr);
    *data = nim->data;
    nim->data = NULL;
    nifti_image_free(nim);
    return 0;
}

static void set_dmat(nifti_dmat44 *m, const double in[16]) {
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) m->m[r][c] = in[r * 4 + c];
}

int asn_nifti_write(const char *path, const asn_nifti_header *hdr, const void *data,
                    int compression, char *err, size_t errlen) {
    quiet_library();
    if (!supported_datatype(hdr->datatype)) {
        set_err(err, errlen, "unsupported voxel datatype code %d", hdr->datatype);
        return 4;
    }
    int64_t dims[8];
    for (int i = 0; i < 8; i++) dims[i] = hdr->dim[i];
    nifti_image *nim = nifti_make_new_nim(dims, hdr->datatype, 0);
    if (nim == NULL) {
        set_err(err, errlen, "nifti2_io refused the dimensions");
        return 5;
    }
    for (int i = 1; i < 8; i++) nim->pixdim[i] = hdr->pixdim[i];
    nim->dx = hdr->pixdim[1]; nim->dy = hdr->pixdim[2]; nim->dz = hdr->pixdim[3];
    nim->dt = hdr->pixdim[4]; nim->du = hdr->pixdim[5]; nim->dv = hdr->pixdim[6];
    nim->dw = hdr->pixdim[7];
    nim->scl_slope = hdr->scl_slope;
    nim->scl_inter = hdr->scl_inter;
    nim->cal_min = hdr->cal_min;
    nim->cal_max = hdr->cal_max;
    nim->qform_code = hdr->qform_code;
    nim->sform_code = hdr->sform_code;
    nim->quatern_b = hdr->quatern_b;
    nim->quatern_c = hdr->quatern_c;
    nim->quatern_d = hdr->quatern_d;
    nim->qoffset_x = hdr->qoffset_x;
    nim->qoffset_y = hdr->qoffset_y;
    nim->qoffset_z = hdr->qoffset_z;
    nim->qfac = (hdr->qfac < 0) ? -1.0 : 1.0;
    nim->pixdim[0] = nim->qfac;
    set_dmat(&nim->sto_xyz, hdr->sto_xyz);
    nim->xyz_units = hdr->xyz_units;
    nim->time_units = hdr->time_units;
    nim->toffset = hdr->toffset;
    nim->intent_code = hdr->intent_code;
    memcpy(nim->descrip, hdr->descrip, sizeof(nim->descrip));
    nim->descrip[sizeof(nim->descrip) - 1] = 0;
    memcpy(nim->intent_name, hdr->intent_name, sizeof(nim->intent_name));
    nim->intent_name[sizeof(nim->intent_name) - 1] = 0;
    nim->nifti_type = (hdr->nifti_version == 2) ? NIFTI_FTYPE_NIFTI2_1 : NIFTI_FTYPE_NIFTI1_1;
    // Header, the 4-byte extender (no extensions), then the voxels: 352 (NIfTI-1) or 544
    // (NIfTI-2), both multiples of 16.
    nim->iname_offset = (hdr->nifti_version == 2) ? 544 : 352;

    // The header bytes come from nifti2_io's own conversion; the file itself is written here
    // through znzlib, because Debian's nifti2_io (3.0.1) writes single-file NIfTI-2 as if it
    // were a two-file pair (header overwritten by the data), and because this way every
    // write and the final close are checked.
    union { nifti_1_header n1; nifti_2_header n2; } h;
    size_t hsize;
    if (hdr->nifti_version == 2) {
        if (nifti_convert_nim2n2hdr(nim, &h.n2) != 0) {
            set_err(err, errlen, "nifti2_io could not build a NIfTI-2 header");
            nifti_image_free(nim);
            return 5;
        }
        memcpy(h.n2.magic, "n+2\0\r\n\032\n", 8);
        h.n2.vox_offset = 544;
        hsize = sizeof(nifti_2_header);
    } else {
        if (nifti_convert_nim2n1hdr(nim, &h.n1) != 0) {
            set_err(err, errlen, "nifti2_io could not build a NIfTI-1 header");
            nifti_image_free(nim);
            return 5;
        }
        memcpy(h.n1.magic, "n+1\0", 4);
        h.n1.vox_offset = 352;
        hsize = sizeof(nifti_1_header);
    }
    size_t nbytes = (size_t)nim->nvox * (size_t)nim->nbyper;
    nifti_image_free(nim);

    size_t plen = strlen(path);
    int gz = plen > 3 && strcmp(path + plen - 3, ".gz") == 0;
    char mode[8] = "wb";
    if (gz && compression >= 1 && compression <= 9) snprintf(mode, sizeof(mode), "wb%d", compression);
    errno = 0;
    znzFile fp = znzopen(path, mode, gz);
    if (znz_isnull(fp)) {
        set_err(err, errlen, "could not create %s: %s", path, errno ? strerror(errno) : "open failed");
        return 8;
    }
    const char extender[4] = {0, 0, 0, 0};
    int ok = znzwrite(&h, 1, hsize, fp) == hsize && znzwrite(extender, 1, 4, fp) == 4;
    // Large buffers go in chunks: gzwrite takes an unsigned int length.
    const char *p = (const char *)data;
    size_t left = nbytes;
    while (ok && left > 0) {
        size_t chunk = left > ((size_t)1 << 30) ? ((size_t)1 << 30) : left;
        ok = znzwrite(p, 1, chunk, fp) == chunk;
        p += chunk;
        left -= chunk;
    }
    int close_rc = Xznzclose(&fp);
    if (!ok || close_rc != 0) {
        set_err(err, errlen, "could not write %s: %s", path, errno ? strerror(errno) : "write failed");
        return 8;
    }
    return 0;
}

void asn_nifti_affine_to_quatern(const double affine[16], double *qb, double *qc, double *qd,
                                 double *qx, double *qy, double *qz, double *dx, double *dy,
                                 double *dz, double *qfac) {
    nifti_dmat44 m;
    set_dmat(&m, affine);
    nifti_dmat44_to_quatern(m, qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac);
}

void asn_nifti_quatern_to_affine(double qb, double qc, double qd, double qx, double qy,
                                 double qz, double dx, double dy, double dz, double qfac,
                                 double affine[16]) {
    nifti_dmat44 m = nifti_quatern_to_dmat44(qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac);
    copy_dmat(&m, affine);
}

void asn_nifti_free(void *data) { free(data); }
