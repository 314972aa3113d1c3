#!/usr/bin/env python3
"""Inspect a phantom2 folder: per patient shape, spacing, label voxel counts,
volumes (mL) and LV EF recomputed from the label maps (compared with
truth.json), and a PNG montage of the mid-ventricular ED slice of the first 4
patients with label contours (RV cavity red, LV myocardium green, LV cavity
blue/cyan).

Usage: python3 scripts/phantom2/check.py DIR [--png montage.png] [--n 4]
"""
import argparse
import glob
import json
import os

import numpy as np
import nibabel as nib
from PIL import Image, ImageDraw

COLORS = {1: (255, 60, 60), 2: (60, 255, 60), 3: (60, 160, 255)}


def read_info(path):
    info = {}
    with open(path) as f:
        for line in f:
            if ":" in line:
                k, v = line.split(":", 1)
                info[k.strip()] = v.strip()
    return info


def tile(img2d, lab2d, zoom=2):
    """img2d/lab2d indexed [x, y]; displayed with x horizontal, y vertical."""
    im = img2d.T.astype(np.float64)
    lb = lab2d.T
    lo, hi = np.percentile(im, 0.5), np.percentile(im, 99.5)
    g = np.clip((im - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    g = np.kron(g, np.ones((zoom, zoom), np.uint8))
    lb = np.kron(lb, np.ones((zoom, zoom), np.uint8))
    raw = np.stack([g] * 3, -1)
    ov = raw.copy()
    for lab, col in COLORS.items():
        m = lb == lab
        edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
        ov[edge] = col
    return raw, ov


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--png", default=None)
    ap.add_argument("--n", type=int, default=4)
    args = ap.parse_args()
    pats = sorted(d for d in glob.glob(os.path.join(args.dir, "patient*")) if os.path.isdir(d))
    tiles = []
    bad = 0
    for pdir in pats:
        name = os.path.basename(pdir)
        info = read_info(os.path.join(pdir, "Info.cfg"))
        truth = None
        tp = os.path.join(pdir, "truth.json")
        if os.path.exists(tp):
            with open(tp) as f:
                truth = json.load(f)
        vols = {}
        for tag in ("ED", "ES"):
            fno = int(info[tag])
            img = nib.load(os.path.join(pdir, "%s_frame%02d.nii.gz" % (name, fno)))
            gt = nib.load(os.path.join(pdir, "%s_frame%02d_gt.nii.gz" % (name, fno)))
            lab = np.asarray(gt.dataobj)
            arr = np.asarray(img.dataobj)
            zooms = img.header.get_zooms()[:3]
            vml = float(np.prod(zooms)) / 1000.0
            cnt = np.bincount(lab.ravel().astype(np.int64), minlength=4)
            v = {"LV": cnt[3] * vml, "RV": cnt[1] * vml, "MYO": cnt[2] * vml}
            vols[tag] = v
            if tag == "ED":
                q, s = img.header.get_qform(coded=True), img.header.get_sform(coded=True)
                print("%s %-4s ES=%s NbFrame=%s shape=%s dtype=%s/%s spacing=(%.3f, %.3f, %.2f) qform=%d sform=%d "
                      "range=[%d, %d]" % (name, info["Group"], info["ES"], info["NbFrame"], arr.shape, arr.dtype,
                                         lab.dtype, *zooms, int(q[1] or 0), int(s[1] or 0), arr.min(), arr.max()))
                if len(tiles) < args.n:
                    per = (lab == 3).sum((0, 1))
                    ks = np.nonzero(per)[0]
                    k = int(ks[len(ks) // 2]) if len(ks) else arr.shape[2] // 2
                    tiles.append((name + " " + info["Group"] + " z=%d" % k, *tile(arr[:, :, k], lab[:, :, k])))
            print("   %s frame %2d voxels bg/RV/MYO/LV = %s  LV %.1f mL  RV %.1f mL  MYO %.1f mL"
                  % (tag, int(info[tag]), "/".join(str(int(c)) for c in cnt[:4]), v["LV"], v["RV"], v["MYO"]))
            if truth is not None:
                t = truth["frames"][tag]
                for key, tk in (("LV", "lv_cavity_ml"), ("RV", "rv_cavity_ml"), ("MYO", "myocardium_ml")):
                    if abs(t[tk] - v[key]) > 0.01:
                        print("   MISMATCH %s %s: truth %.3f vs labels %.3f" % (tag, key, t[tk], v[key]))
                        bad += 1
        ed, es = vols["ED"], vols["ES"]
        lvef = 100 * (ed["LV"] - es["LV"]) / ed["LV"] if ed["LV"] > 0 else float("nan")
        rvef = 100 * (ed["RV"] - es["RV"]) / ed["RV"] if ed["RV"] > 0 else float("nan")
        print("   LVEF %.1f%%  RVEF %.1f%%  LV mass(ED) %.1f g%s" % (
            lvef, rvef, 1.05 * ed["MYO"],
            "" if truth is None else "  truth EF %.2f%% artefacts=%s" % (truth["lv_ef_percent"],
                                                                       ",".join(truth["params"]["artefacts"]) or "-")))
    print("%d patients, %d truth mismatches" % (len(pats), bad))
    if args.png and tiles:
        hmax = max(t[1].shape[0] for t in tiles)
        wsum = sum(t[1].shape[1] for t in tiles) + 8 * (len(tiles) - 1)
        canvas = Image.new("RGB", (wsum, 2 * hmax + 40), (0, 0, 0))
        d = ImageDraw.Draw(canvas)
        x = 0
        for title, raw, ov in tiles:
            canvas.paste(Image.fromarray(raw), (x, 16))
            canvas.paste(Image.fromarray(ov), (x, 16 + hmax + 8))
            d.text((x + 2, 2), title, fill=(255, 255, 0))
            x += raw.shape[1] + 8
        canvas.save(args.png)
        print("montage ->", args.png)


if __name__ == "__main__":
    main()
