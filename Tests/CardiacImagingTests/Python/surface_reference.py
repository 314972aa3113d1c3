#!/usr/bin/env python3
"""Reference surface distances for MetricsTests, computed with scipy.ndimage the way
medpy.metric.binary does (asd, assd, hd, hd95), so the Swift implementation can be checked
against it without medpy installed.

Usage: surface_reference.py DIR
DIR/manifest.json lists cases: {"name", "shape": [nx, ny, nz], "spacing": [sx, sy, sz],
"a": file, "b": file}; each file holds nx*ny*nz bytes (0 or 1), i fastest, then j, then k.
Prints a JSON list with, per case: name, dice, asd_ab, asd_ba, assd, hd95, hd.
"""
import json
import os
import sys

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure


def load(path, shape):
    raw = np.fromfile(path, dtype=np.uint8)
    # i fastest in memory: Fortran order on an (nx, ny, nz) array.
    return raw.reshape(shape, order="F").astype(bool)


def surface_distances(result, reference, spacing):
    # medpy.metric.binary.__surface_distances with connectivity=1.
    footprint = generate_binary_structure(result.ndim, 1)
    result_border = result ^ binary_erosion(result, structure=footprint, iterations=1)
    reference_border = reference ^ binary_erosion(reference, structure=footprint, iterations=1)
    dt = distance_transform_edt(~reference_border, sampling=spacing)
    return dt[result_border]


def main():
    folder = sys.argv[1]
    with open(os.path.join(folder, "manifest.json")) as f:
        cases = json.load(f)
    out = []
    for case in cases:
        shape = tuple(case["shape"])
        spacing = tuple(float(s) for s in case["spacing"])
        a = load(os.path.join(folder, case["a"]), shape)
        b = load(os.path.join(folder, case["b"]), shape)
        ab = surface_distances(a, b, spacing)
        ba = surface_distances(b, a, spacing)
        both = np.hstack((ab, ba))
        out.append({
            "name": case["name"],
            "dice": float(2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))),
            "asd_ab": float(ab.mean()),
            "asd_ba": float(ba.mean()),
            "assd": float(np.mean((ab.mean(), ba.mean()))),
            "hd95": float(np.percentile(both, 95)),
            "hd": float(both.max()),
        })
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
