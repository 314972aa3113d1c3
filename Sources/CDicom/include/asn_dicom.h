/* A narrow C API over DCMTK 3.6.x for autosam (nothing of C++ crosses this header).
 *
 * Conventions: every function returns 0 on success or one of the ASN_DICOM_* codes below,
 * and writes a readable message into the caller's `err` buffer (always NUL-terminated when
 * errlen > 0). Buffers are owned by the caller; the one opaque handle (a loaded DICOM SEG)
 * is released with asn_dicom_seg_close. All coordinates are DICOM patient coordinates
 * (LPS, millimetres), exactly as the files store them.
 */
#ifndef ASN_DICOM_H
#define ASN_DICOM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    ASN_DICOM_OK = 0,
    ASN_DICOM_ERR_IO = 1,          /* cannot open or read the file */
    ASN_DICOM_ERR_NOT_DICOM = 2,   /* not a DICOM file, or its structure is broken */
    ASN_DICOM_ERR_TRUNCATED = 3,   /* the file ends before its data does */
    ASN_DICOM_ERR_NO_PIXELS = 4,   /* a DICOM object without pixel data */
    ASN_DICOM_ERR_UNSUPPORTED = 5, /* a valid object this API does not handle */
    ASN_DICOM_ERR_INVALID = 6,     /* bad argument or bad attribute values */
    ASN_DICOM_ERR_WRITE = 7        /* writing failed */
};

/* Silences DCMTK's logger and registers the JPEG, JPEG-LS and RLE decoders. Idempotent and
 * thread-safe; every other function calls it. */
void asn_dicom_init(void);

/* ---------------------------------------------------------------- reading images */

/* The attributes autosam reads from one image file. Strings are empty and has_* flags 0
 * when an attribute is absent. */
typedef struct asn_dicom_header {
    char sop_class_uid[65];
    char sop_instance_uid[65];
    char study_instance_uid[65];
    char series_instance_uid[65];
    char frame_of_reference_uid[65];
    char transfer_syntax_uid[65];
    char modality[17];
    char series_description[65];
    char photometric[17];
    char manufacturer[65];
    char patient_id[65];
    char patient_name[325];
    char accession_number[17];
    char study_id[17];
    char study_date[9];
    char study_description[65];
    int32_t series_number, has_series_number;
    int32_t instance_number, has_instance_number;
    int32_t rows, columns;
    int32_t bits_allocated, bits_stored, high_bit, pixel_representation, samples_per_pixel;
    int32_t number_of_frames; /* 1 when absent */
    int32_t has_pixel_data;
    double image_position[3];
    int32_t has_image_position;
    double image_orientation[6];
    int32_t has_image_orientation;
    double pixel_spacing[2]; /* row spacing (between rows), column spacing */
    int32_t has_pixel_spacing;
    double slice_thickness;
    int32_t has_slice_thickness;
    double spacing_between_slices;
    int32_t has_spacing_between_slices;
    double rescale_slope, rescale_intercept; /* 1 and 0 when absent */
    int32_t has_rescale;
    double trigger_time; /* ms */
    int32_t has_trigger_time;
    int32_t cardiac_number_of_images; /* 0 when absent */
    double heart_rate;                /* beats per minute */
    int32_t has_heart_rate;
    double patient_size; /* metres, as stored */
    int32_t has_patient_size;
    double patient_weight; /* kg */
    int32_t has_patient_weight;
} asn_dicom_header;

/* Reads the attributes of one file without loading its pixel data. Fails with
 * ASN_DICOM_ERR_NOT_DICOM for non-DICOM files and ASN_DICOM_ERR_TRUNCATED when the file is
 * shorter than its pixel data says. */
int asn_dicom_read_header(const char *path, asn_dicom_header *out, char *err, size_t errlen);

/* Reads the stored pixel values of a single-sample image (decompressing when needed) into
 * `out`: frames * rows * columns values, column index fastest, then row, then frame;
 * sign-extended per Pixel Representation and masked to Bits Stored. No rescale is applied. */
int asn_dicom_read_pixels(const char *path, int32_t *out, size_t count, char *err, size_t errlen);

/* ---------------------------------------------------------------- writing MR images */

/* One classic MR Image Storage instance. Strings may be NULL or empty (then omitted, except
 * the UIDs, which are required). has_* flags 0 omit the attribute (used to make bad input). */
typedef struct asn_dicom_mr_image {
    const char *sop_class_uid; /* NULL: MR Image Storage */
    const char *sop_instance_uid;
    const char *study_instance_uid;
    const char *series_instance_uid;
    const char *frame_of_reference_uid;
    const char *patient_id;
    const char *patient_name;
    const char *patient_sex;
    const char *study_date;
    const char *study_time;
    const char *study_id;
    const char *accession_number;
    const char *study_description;
    const char *series_description;
    const char *manufacturer;
    const char *image_type; /* NULL: "ORIGINAL\\PRIMARY\\OTHER" */
    int32_t series_number;
    int32_t instance_number;
    int32_t acquisition_number;
    int32_t rows, columns;
    double image_position[3];
    int32_t has_image_position;
    double image_orientation[6];
    int32_t has_image_orientation;
    double pixel_spacing[2];
    int32_t has_pixel_spacing;
    double slice_thickness;
    double spacing_between_slices; /* written when > 0 */
    double slice_location;
    double rescale_slope, rescale_intercept;
    int32_t has_rescale;
    double trigger_time;
    int32_t has_trigger_time;
    int32_t cardiac_number_of_images; /* written when > 0 */
    double heart_rate;                /* written when > 0 */
    double patient_size;              /* metres; written when > 0 */
    double patient_weight;            /* kg; written when > 0 */
    double repetition_time, echo_time, flip_angle, magnetic_field_strength;
    int32_t omit_pixel_data; /* 1: write no Pixel Data (a non-image object, for tests) */
} asn_dicom_mr_image;

/* Writes one image with unsigned 16-bit stored values (Bits Stored 16) in Explicit VR Little
 * Endian. `pixels` holds rows * columns values, column index fastest. */
int asn_dicom_write_mr(const char *path, const asn_dicom_mr_image *image, const uint16_t *pixels,
                       char *err, size_t errlen);

/* ---------------------------------------------------------------- multi-frame images */

/* The attributes of one frame of a multi-frame image with functional groups (Enhanced MR and
 * the like): each from the frame's Per-Frame Functional Groups item, else from the Shared
 * Functional Groups. */
typedef struct asn_dicom_frame_attrs {
    double image_position[3];
    int32_t has_image_position;
    double image_orientation[6];
    int32_t has_image_orientation;
    double pixel_spacing[2];
    int32_t has_pixel_spacing;
    double slice_thickness;
    int32_t has_slice_thickness;
    double rescale_slope, rescale_intercept; /* 1 and 0 when absent */
    int32_t has_rescale;
    double trigger_time; /* Nominal Cardiac Trigger Delay Time, ms */
    int32_t has_trigger_time;
    int32_t temporal_position_index; /* Frame Content; 0 when absent */
    int32_t in_stack_position;       /* Frame Content; 0 when absent */
} asn_dicom_frame_attrs;

/* Fills out[0 ..< min(count, Number of Frames)] and sets *frames to Number of Frames. Fails
 * with ASN_DICOM_ERR_UNSUPPORTED when the file has no Per-Frame Functional Groups. */
int asn_dicom_read_frame_attrs(const char *path, asn_dicom_frame_attrs *out, size_t count, int32_t *frames,
                               char *err, size_t errlen);

/* Writes an Enhanced MR Image Storage instance of `frames` frames: patient, study, series and
 * equipment attributes from `image` (its geometry fields unused), each frame's geometry,
 * rescale and trigger time from `attrs`. `pixels` holds frames * rows * columns values. */
int asn_dicom_write_enhanced_mr(const char *path, const asn_dicom_mr_image *image, int32_t frames,
                                const asn_dicom_frame_attrs *attrs, const uint16_t *pixels, char *err,
                                size_t errlen);

/* ---------------------------------------------------------------- DICOM SEG */

typedef struct asn_dicom_code {
    char value[17];
    char scheme[17];
    char meaning[65];
} asn_dicom_code;

typedef struct asn_dicom_segment {
    uint8_t label_value; /* the value in the label map this segment takes */
    char label[65];
    char description[65];
    asn_dicom_code category;
    asn_dicom_code type;
    uint16_t cielab[3]; /* recommended display colour (DICOM CIELab, 0...65535) */
} asn_dicom_segment;

/* A binary segmentation of one 3D frame of a source series: one SEG frame per segment and
 * slice (empty ones included), in segment-major order. */
typedef struct asn_dicom_seg_request {
    int32_t rows, columns, slices;
    const char *source_file;                   /* an image of the source series: patient, study,
                                                  frame of reference are copied from it */
    const char *source_sop_class_uid;          /* of every referenced image */
    const char *source_series_instance_uid;    /* of the referenced images */
    const char *const *source_sop_instance_uids; /* one per slice */
    const int32_t *source_frame_numbers;       /* one per slice (1-based frame of a
                                                  multi-frame source), or NULL */
    const double *positions;                   /* slices * 3, LPS, of each slice's first pixel */
    double orientation[6];                     /* row direction, column direction (LPS) */
    double pixel_spacing[2];                   /* row spacing, column spacing */
    double slice_thickness;
    double spacing_between_slices;
    int32_t segment_count;
    const asn_dicom_segment *segments;
    const char *series_instance_uid; /* NULL or empty: a new one */
    const char *series_description;
    int32_t series_number;
    int32_t instance_number;
    const char *content_label;       /* upper case, <= 16 chars */
    const char *content_description;
    const char *content_creator;
    const char *manufacturer;
    const char *model_name;
    const char *software_version;
    const char *algorithm_name;
    const char *algorithm_version;
} asn_dicom_seg_request;

/* Writes the SEG. `labels` holds slices * rows * columns label values (column fastest, then
 * row, then slice); a pixel belongs to segment s when its value is s's label_value. */
int asn_dicom_write_seg(const char *path, const asn_dicom_seg_request *request,
                        const uint8_t *labels, char *err, size_t errlen);

/* ---------------------------------------------------------------- structured report */

/* One measured value of an SR measurement group. */
typedef struct asn_dicom_sr_value {
    asn_dicom_code concept;         /* what is measured (e.g. LOINC 8821-1) */
    asn_dicom_code unit;            /* UCUM */
    double value;
    const char *equivalent_meaning; /* NULL or empty: none */
} asn_dicom_sr_value;

/* A measurement group: a volumetric ROI group (TID 1411) when it names a SEG file and a
 * segment of it, else a group of measurements of the study (TID 1501). */
typedef struct asn_dicom_sr_group {
    const char *tracking_id;     /* a readable label of the group */
    const char *time_point;      /* NULL or empty: none (e.g. "ED", "ES") */
    asn_dicom_code finding_site; /* empty value: none */
    const char *seg_file;        /* NULL or empty: not of one segment */
    int32_t segment_number;
    int32_t value_count;
    const asn_dicom_sr_value *values;
} asn_dicom_sr_group;

/* An Imaging Measurement Report (TID 1500, Enhanced SR) in the study of `source_file`. */
typedef struct asn_dicom_sr_request {
    const char *source_file;               /* an image of the source series: patient and study
                                              are copied from it */
    const char *source_series_instance_uid;
    asn_dicom_code procedure;              /* Procedure Reported */
    const char *series_instance_uid;       /* NULL or empty: a new one */
    const char *series_description;
    int32_t series_number;
    int32_t instance_number;
    const char *device_uid;                /* the observing device (NULL: a new UID) */
    const char *device_name;
    const char *manufacturer;
    const char *model_name;
    const char *software_version;
    const char *algorithm_name;            /* on every volumetric measurement (TID 4019) */
    const char *algorithm_version;
    int32_t parameter_count;
    const char *const *algorithm_parameters;
    int32_t group_count;
    const asn_dicom_sr_group *groups;
} asn_dicom_sr_request;

/* Writes the report. Every SEG file a group names is listed as evidence. */
int asn_dicom_write_sr(const char *path, const asn_dicom_sr_request *request, char *err, size_t errlen);

/* ---------------------------------------------------------------- secondary capture */

/* A derived RGB picture (Secondary Capture Image Storage) in the study of `source_file`. */
typedef struct asn_dicom_sc_request {
    const char *source_file;            /* an image of the source series: patient and study
                                           are copied from it */
    int32_t rows, columns;
    const char *series_instance_uid;    /* NULL or empty: a new one */
    const char *series_description;
    int32_t series_number;
    int32_t instance_number;
    const char *derivation_description;
    const char *manufacturer;
    const char *software_version;
    int32_t source_count;               /* the images the picture shows (Source Image Sequence) */
    const char *const *source_sop_class_uids;
    const char *const *source_sop_instance_uids;
    const int32_t *source_frame_numbers; /* 1-based frame of a multi-frame source, 0 none; or NULL */
} asn_dicom_sc_request;

/* Writes the picture: `rgb` holds rows * columns * 3 bytes, R G B per pixel, row-major. */
int asn_dicom_write_sc(const char *path, const asn_dicom_sc_request *request, const uint8_t *rgb,
                       char *err, size_t errlen);

/* ---------------------------------------------------------------- sending (C-STORE) */

typedef struct asn_dicom_store_request {
    const char *host;
    int32_t port;
    const char *calling_ae; /* ours */
    const char *called_ae;  /* the peer's */
    int32_t timeout_s;      /* connection, association and each message */
    int32_t tls;            /* 1: over TLS (DCMTK's dcmtls), the peer's certificate required
                               and verified against tls_ca_file */
    const char *tls_ca_file;     /* trusted certificates (PEM); required with tls */
    const char *tls_certificate; /* ours (PEM), with tls_private_key (unencrypted PEM); both
                                    NULL or empty: no client certificate */
    const char *tls_private_key;
} asn_dicom_store_request;

/* Sends the files over one association (a presentation context per SOP Class, the file's own
 * transfer syntax and the two little-endian ones offered). `statuses[i]` receives the peer's
 * C-STORE response status of file i (0 success; 0xB000-0xBFFF warning), or 0xFFFF when it was
 * not sent (unreadable file, no accepted context, the association broke before it). Returns
 * ASN_DICOM_OK when the association was made and released, whatever the statuses say;
 * ASN_DICOM_ERR_IO when the peer could not be reached or refused the association. */
int asn_dicom_store(const asn_dicom_store_request *request, const char *const *files, int32_t count,
                    uint16_t *statuses, char *err, size_t errlen);

/* Reading a SEG back (for round trips and for importing corrected segmentations). */
typedef struct asn_dicom_seg_handle asn_dicom_seg_handle;

typedef struct asn_dicom_seg_info {
    int32_t rows, columns, frames, segments;
    int32_t binary; /* 1 binary, 0 fractional */
    double orientation[6];
    int32_t has_orientation;
    double pixel_spacing[2];
    int32_t has_pixel_spacing;
    double spacing_between_slices, slice_thickness;
    char frame_of_reference_uid[65];
    char study_instance_uid[65];
    char series_instance_uid[65];
    char sop_instance_uid[65];
} asn_dicom_seg_info;

typedef struct asn_dicom_seg_frame {
    int32_t segment_number;
    double position[3];
    int32_t has_position;
    char referenced_sop_instance_uid[65]; /* first derivation source, empty if none */
} asn_dicom_seg_frame;

int asn_dicom_seg_open(const char *path, asn_dicom_seg_handle **out, char *err, size_t errlen);
void asn_dicom_seg_close(asn_dicom_seg_handle *seg);
int asn_dicom_seg_get_info(asn_dicom_seg_handle *seg, asn_dicom_seg_info *info, char *err, size_t errlen);
/* Segment `number` (1-based, as SEG numbers them). */
int asn_dicom_seg_get_segment(asn_dicom_seg_handle *seg, int32_t number, asn_dicom_segment *out,
                              char *err, size_t errlen);
/* Frame `index` (0-based): its attributes and, when pixels != NULL, rows * columns bytes of
 * 0/1 (fractional: the stored value). */
int asn_dicom_seg_get_frame(asn_dicom_seg_handle *seg, int32_t index, asn_dicom_seg_frame *frame,
                            uint8_t *pixels, size_t count, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* ASN_DICOM_H */
