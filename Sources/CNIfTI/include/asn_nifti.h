// A narrow C API over nifti2_io for autosam. Nothing of nifti2_io's own types leaks out:
// Swift sees only this header. Every function reports failure through a return code and a
// readable message in `err`; none prints or aborts.
#ifndef ASN_NIFTI_H
#define ASN_NIFTI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The header fields autosam reads and writes, in NIfTI-2 widths (NIfTI-1 values widen
/// exactly, so a NIfTI-1 round trip is bit for bit).
typedef struct {
    int nifti_version;        ///< 1 or 2 (0: ANALYZE 7.5, refused by the reader)
    int datatype;             ///< NIfTI DT_* code
    int nbyper;               ///< bytes per voxel
    int64_t dim[8];           ///< dim[0] = number of dimensions, dim[1..7] sizes
    double pixdim[8];         ///< pixdim[0] = qfac as stored; pixdim[1..7] spacings
    double scl_slope, scl_inter;
    int qform_code, sform_code;
    double quatern_b, quatern_c, quatern_d;
    double qoffset_x, qoffset_y, qoffset_z;
    double qfac;
    double qto_xyz[16];       ///< row-major 4x4 from the quaternion (reader only)
    double sto_xyz[16];       ///< row-major 4x4 sform (rows 0..2 are stored)
    int xyz_units, time_units;
    double toffset;
    double cal_min, cal_max;
    char descrip[80];
    char intent_name[16];
    int intent_code;
} asn_nifti_header;

/// Reads only the header. Returns 0 on success, otherwise a non-zero code with `err` set.
int asn_nifti_read_header(const char *path, asn_nifti_header *hdr, char *err, size_t errlen);

/// Reads header and voxels. `*data` receives a malloc'd buffer of nvox*nbyper bytes that the
/// caller releases with asn_nifti_free. Refuses data larger than `max_bytes`.
int asn_nifti_read(const char *path, int64_t max_bytes, asn_nifti_header *hdr, void **data,
                   char *err, size_t errlen);

/// Writes header and voxels to `path` (a `.nii` or `.nii.gz` name; gzip when it ends in
/// `.gz`). `compression` is the zlib level (1-9; 0 means the library default). The caller
/// renames into place: this function does not write atomically by itself.
int asn_nifti_write(const char *path, const asn_nifti_header *hdr, const void *data,
                    int compression, char *err, size_t errlen);

/// Converts a rotation-and-scale affine (row-major 4x4) to NIfTI quaternion parameters.
void asn_nifti_affine_to_quatern(const double affine[16], double *qb, double *qc, double *qd,
                                 double *qx, double *qy, double *qz, double *dx, double *dy,
                                 double *dz, double *qfac);

/// The qform affine (row-major 4x4) of quaternion parameters, as nifti2_io computes it.
void asn_nifti_quatern_to_affine(double qb, double qc, double qd, double qx, double qy,
                                 double qz, double dx, double dy, double dz, double qfac,
                                 double affine[16]);

void asn_nifti_free(void *data);

#ifdef __cplusplus
}
#endif
#endif
