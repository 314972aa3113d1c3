#!/usr/bin/env python3
"""Independent check of our derived picture (DICOM secondary capture) with pydicom (test
helper; the product never runs Python).

  dicom_picture_check.py FILE
      -> JSON: SOP class, study UID, image type, burned-in annotation, photometric
         interpretation, rows, columns, the referenced source instances, and the pixels as
         pydicom decodes them: the sum of all bytes and the first pixel of each row.
"""
import json
import sys

import numpy as np
import pydicom


def main():
    ds = pydicom.dcmread(sys.argv[1])
    px = ds.pixel_array.astype(np.int64)
    print(json.dumps({
        "sop_class": str(ds.SOPClassUID),
        "study_uid": str(ds.StudyInstanceUID),
        "patient_id": str(ds.get("PatientID", "")),
        "image_type": [str(v) for v in ds.ImageType],
        "burned_in": str(ds.BurnedInAnnotation),
        "photometric": str(ds.PhotometricInterpretation),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "shape": list(px.shape),
        "sources": [str(i.ReferencedSOPInstanceUID) for i in ds.get("SourceImageSequence", [])],
        "byte_sum": int(px.sum()),
        "row_starts": px[:, 0, :].tolist(),
    }))


if __name__ == "__main__":
    main()
