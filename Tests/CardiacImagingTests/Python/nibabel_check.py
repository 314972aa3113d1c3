#!/usr/bin/env python3
"""Independent NIfTI cross-check with nibabel (test helper; the product never runs Python).

  nibabel_check.py describe FILE...   -> JSON per file: shape, dtype, header codes, affines,
                                          scaling, and a float64 sum / sum of squares / first
                                          voxels of the raw stored values
  nibabel_check.py write DIR          -> writes files with nibabel and a JSON manifest of what
                                          was written (for our reader to compare against)
"""
import json
import sys

import nibabel as nib
import numpy as np


def describe(path):
    img = nib.load(path)
    hdr = img.header
    raw = np.asanyarray(img.dataobj.get_unscaled())
    return {
        "path": path,
        "version": 2 if isinstance(img, nib.Nifti2Image) else 1,
        "shape": list(raw.shape),
        "dtype": str(raw.dtype),
        "qform_code": int(hdr["qform_code"]),
        "sform_code": int(hdr["sform_code"]),
        "qform": img.get_qform().tolist(),
        "sform": img.get_sform().tolist(),
        "affine": img.affine.tolist(),
        # nibabel moves the scaling from the header to the data proxy on load.
        "slope": float(img.dataobj.slope),
        "inter": float(img.dataobj.inter),
        "zooms": [float(z) for z in hdr.get_zooms()],
        "sum": float(raw.astype(np.float64).sum()),
        "sumsq": float((raw.astype(np.float64) ** 2).sum()),
        "first": raw.reshape(-1, order="F")[:16].astype(np.float64).tolist(),
    }


def rotation(a, b, c):
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def write(folder):
    rng = np.random.default_rng(7)
    manifest = []
    cases = [
        ("nb_int16_4d.nii.gz", np.int16, (13, 11, 7, 5), 1, 2, 1),
        ("nb_float32.nii", np.float32, (9, 12, 5), 1, 1, 0),
        ("nb_uint8_q_only.nii.gz", np.uint8, (10, 8, 6), 1, 0, 1),
        ("nb_float64_v2.nii.gz", np.float64, (6, 7, 8), 2, 4, 2),
        ("nb_uint16_scaled.nii", np.uint16, (8, 9, 4), 1, 1, 1),
    ]
    for name, dtype, shape, version, scode, qcode in cases:
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            data = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        else:
            data = rng.normal(0, 100, size=shape).astype(dtype)
        affine = np.eye(4)
        affine[:3, :3] = rotation(0.3, -0.5, 1.1) @ np.diag([1.37, 1.37, 8.5])
        affine[:3, 3] = [12.5, -40.25, 33.0]
        cls = nib.Nifti2Image if version == 2 else nib.Nifti1Image
        img = cls(data, None)
        img.set_sform(affine, code=scode)
        q_affine = affine.copy()
        q_affine[:3, 3] += [1.0, 2.0, 3.0]  # a different qform, to prove precedence
        img.set_qform(q_affine, code=qcode)
        path = f"{folder}/{name}"
        nib.save(img, path)
        if "scaled" in name:
            # nibabel recomputes scaling on save; set scl_slope / scl_inter in the file itself
            # (NIfTI-1 offsets 112 and 116, little-endian float32).
            with open(path, "r+b") as f:
                f.seek(112)
                f.write(np.array([0.5, -10.0], dtype="<f4").tobytes())
        manifest.append(describe(path))
    print(json.dumps(manifest))


if __name__ == "__main__":
    if sys.argv[1] == "describe":
        print(json.dumps([describe(p) for p in sys.argv[2:]]))
    elif sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        sys.exit("usage: nibabel_check.py describe FILE... | write DIR")
