#!/usr/bin/env python3
"""Independent DICOM SEG / geometry cross-check with pydicom and highdicom (test helper; the
product never runs Python).

  dicom_seg_check.py SEG LABELS.nii[.gz] SOURCE_FOLDER
      -> JSON: what highdicom and pydicom read from our SEG (segments, codes, references),
         whether its frames, placed by their own geometry, equal the NIfTI label map voxel
         for voxel (two independent placements: highdicom's volume and pydicom's per-frame
         Plane Position), nibabel's affine of the label map, and the RAS affine computed
         with pydicom from the source MR series the SEG references.

All geometry is compared in RAS (nibabel's world): DICOM LPS with x and y negated.
"""
import json
import os
import sys

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def code(seq):
    c = seq[0]
    return [str(c.CodeValue), str(c.CodingSchemeDesignator), str(c.CodeMeaning)]


def signed_permutation(m, tol=1e-4):
    """m (4x4) maps index space A to index space B; it must permute axes (with flips) and
    shift by whole voxels. Returns (axes, signs, offsets) or None."""
    r = m[:3, :3]
    axes, signs = [], []
    for a in range(3):
        col = r[:, a]
        b = int(np.argmax(np.abs(col)))
        if abs(abs(col[b]) - 1) > tol or np.sum(np.abs(col) > tol) != 1:
            return None
        axes.append(b)
        signs.append(int(np.sign(col[b])))
    t = m[:3, 3]
    if np.max(np.abs(t - np.round(t))) > tol or sorted(axes) != [0, 1, 2]:
        return None
    return axes, signs, np.round(t).astype(int)


def highdicom_placement(seg, labels, nifti_affine):
    """Maps every NIfTI voxel through highdicom's volume geometry and compares labels."""
    vol = seg.get_volume(combine_segments=True)
    hd_affine_ras = LPS_TO_RAS @ vol.affine
    m = np.linalg.inv(hd_affine_ras) @ nifti_affine
    perm = signed_permutation(m)
    out = {"hd_shape": list(vol.array.shape), "hd_affine_ras": hd_affine_ras.tolist()}
    if perm is None:
        out.update(hd_equal=False, hd_error="highdicom's grid is not a voxel permutation of the label map's")
        return out
    axes, signs, offsets = perm
    idx = np.indices(labels.shape).reshape(3, -1)
    target = [None, None, None]
    for a in range(3):
        target[axes[a]] = signs[a] * idx[a] + offsets[axes[a]]
    target = np.stack(target)
    inside = np.all((target >= 0) & (target < np.array(vol.array.shape)[:, None]), axis=0)
    mapped = np.zeros(idx.shape[1], dtype=np.uint8)
    mapped[inside] = vol.array[target[0, inside], target[1, inside], target[2, inside]]
    flat = labels.reshape(-1, order="C")[np.ravel_multi_index(idx, labels.shape)]
    mismatch = int(np.sum(mapped != flat))
    # Voxels of highdicom's volume outside the label map must be background.
    out.update(hd_equal=mismatch == 0 and int(np.sum(vol.array > 0)) == int(np.sum(flat > 0)),
               hd_mismatch=mismatch, hd_foreground=int(np.sum(vol.array > 0)))
    return out


def pydicom_placement(ds, labels, nifti_affine):
    """Places every frame by its own Plane Position and the shared orientation/spacing."""
    shared = ds.SharedFunctionalGroupsSequence[0]
    iop = [float(x) for x in shared.PlaneOrientationSequence[0].ImageOrientationPatient]
    spacing = [float(x) for x in shared.PixelMeasuresSequence[0].PixelSpacing]
    row, col = np.array(iop[:3]), np.array(iop[3:])
    inv = np.linalg.inv(nifti_affine)
    frames = ds.pixel_array
    if frames.ndim == 2:
        frames = frames[None]
    rebuilt = np.zeros(labels.shape, dtype=np.uint8)
    off_grid = 0
    for f, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        seg_no = int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        ipp = np.array([float(x) for x in fg.PlanePositionSequence[0].ImagePositionPatient])
        # World position of pixel (column c, row r): ipp + c * colspacing * row + r * rowspacing * col.
        corners = {}
        for name, (c, r) in {"o": (0, 0), "c": (1, 0), "r": (0, 1)}.items():
            lps = ipp + c * spacing[1] * row + r * spacing[0] * col
            corners[name] = (inv @ (LPS_TO_RAS @ np.append(lps, 1.0)))[:3]
        o = corners["o"]
        di, dj = corners["c"] - o, corners["r"] - o
        k = int(round(o[2]))
        if (np.max(np.abs(o - [0, 0, k])) > 1e-3 or np.max(np.abs(di - [1, 0, 0])) > 1e-4
                or np.max(np.abs(dj - [0, 1, 0])) > 1e-4 or not 0 <= k < labels.shape[2]):
            off_grid += 1
            continue
        mask = frames[f].astype(bool)  # rows x columns = j x i
        rebuilt[:, :, k][mask.T] = seg_no
    mismatch = int(np.sum(rebuilt != labels))
    return {"frames_off_grid": off_grid, "frames_mismatch": mismatch, "frames_equal": off_grid == 0 and mismatch == 0}


def source_affine(folder, series_uid):
    """RAS affine of the referenced MR series, from its own attributes (sorted along the normal)."""
    items = []
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                d = pydicom.dcmread(os.path.join(root, name), stop_before_pixels=True)
            except Exception:
                continue
            if getattr(d, "SeriesInstanceUID", None) == series_uid:
                items.append(d)
    first = items[0]
    iop = np.array([float(x) for x in first.ImageOrientationPatient])
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    positions = sorted({round(float(np.dot(np.array(d.ImagePositionPatient, float), normal)), 4): np.array(d.ImagePositionPatient, float)
                        for d in items}.items())
    p0, pn = positions[0][1], positions[-1][1]
    step = (pn - p0) / (len(positions) - 1)
    ps = [float(x) for x in first.PixelSpacing]
    a = np.eye(4)
    a[:3, 0] = row * ps[1]
    a[:3, 1] = col * ps[0]
    a[:3, 2] = step
    a[:3, 3] = p0
    return (LPS_TO_RAS @ a).tolist(), str(first.FrameOfReferenceUID), len(positions)


def main():
    seg_path, nii_path, folder = sys.argv[1:4]
    ds = pydicom.dcmread(seg_path)
    seg = hd.seg.segread(seg_path)
    img = nib.load(nii_path)
    labels = np.asanyarray(img.dataobj).astype(np.uint8)
    out = {
        "sop_class": str(ds.SOPClassUID),
        "segmentation_type": str(ds.SegmentationType),
        "frame_of_reference": str(ds.FrameOfReferenceUID),
        "study_uid": str(ds.StudyInstanceUID),
        "frames": int(ds.NumberOfFrames),
        "segments": [{"number": int(s.SegmentNumber), "label": str(s.SegmentLabel),
                      "category": code(s.SegmentedPropertyCategoryCodeSequence),
                      "type": code(s.SegmentedPropertyTypeCodeSequence),
                      "algorithm_type": str(s.SegmentAlgorithmType)} for s in ds.SegmentSequence],
        "referenced_series": [str(s.SeriesInstanceUID) for s in ds.ReferencedSeriesSequence],
        "referenced_instances": sum(len(s.ReferencedInstanceSequence) for s in ds.ReferencedSeriesSequence),
        "source_uids": len(seg.get_source_image_uids()),
        "nifti_affine": img.affine.tolist(),
        "nifti_shape": list(labels.shape),
    }
    out.update(highdicom_placement(seg, labels, img.affine))
    out.update(pydicom_placement(ds, labels, img.affine))
    affine, for_uid, n = source_affine(folder, out["referenced_series"][0])
    out.update(source_affine_ras=affine, source_frame_of_reference=for_uid, source_slices=n)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
