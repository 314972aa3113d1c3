#!/usr/bin/env python3
"""phantom2 -- an independent family of synthetic cardiac short-axis cine MRI
phantoms (ED + ES frames, ACDC folder layout) for TESTING how segmentation
models generalise.  Never use these for training.

Designed from scratch (it shares no code or shape model with the project's own
phantom generator).  Every patient is drawn from a numpy Generator seeded with
(seed, patient number), so output is fully deterministic.

Usage:
    python3 scripts/phantom2/make_phantoms.py --out DIR --patients N --seed S [--first K]

Labels (ACDC convention): 0 background, 1 RV cavity, 2 LV myocardium,
3 LV cavity (papillary muscles / trabeculae inside the cavity count as cavity).
"""
import argparse
import json
import math
import os
import time

import numpy as np
import nibabel as nib
from scipy import ndimage

GROUPS = ["NOR", "MINF", "DCM", "HCM", "RV"]

# tissue classes (appearance only; labels are computed separately)
(AIR, FAT, MUSCLE, LUNG, LIVER, BLOOD_LV, MYO, MEDIAST, BONE, CSF, STOMACH,
 BLOOD_RV, VESSEL, ATRIUM, LUNGVES) = range(15)
NT = 15

SUPER = 4        # in-plane supersampling inside the heart crop
SUPER_BG = 2     # in-plane supersampling for the rest of the field of view
NSUB = 3         # sub-slices through the slice thickness
TWO_PI = 2.0 * math.pi


# --------------------------------------------------------------------------- helpers
def prof(h, hm):
    """Bullet profile along the long axis: 0 below 0, quarter ellipse up to hm, 1 above."""
    if h <= 0.0:
        return 0.0
    if h >= hm:
        return 1.0
    t = 1.0 - h / hm
    return math.sqrt(max(0.0, 1.0 - t * t))


def angdiff(a, b):
    return (a - b + math.pi) % TWO_PI - math.pi


def fourier(th, terms):
    out = np.zeros_like(th)
    for n, amp, ph in terms:
        out += np.float32(amp) * np.cos(np.float32(n) * th + np.float32(ph))
    return out


def smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def rot2(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s], [s, c]])


def U(rng, lo, hi):
    return float(rng.uniform(lo, hi))


def rand_terms(rng, spec):
    """spec: list of (n, max_amp) -> list of (n, amp, phase)."""
    return [(n, U(rng, 0.0, a), U(rng, 0.0, TWO_PI)) for n, a in spec]


# --------------------------------------------------------------------------- patient sampling
def sample_patient(rng, pnum):
    group = GROUPS[(pnum - 1) % len(GROUPS)]
    g = {"group": group}
    # ----- LV geometry at ED (mm).  h = height above the LV endocardial apex.
    R = {"NOR": (21.5, 27), "MINF": (24, 30), "DCM": (29, 36), "HCM": (17.5, 23), "RV": (19, 24)}[group]
    T = {"NOR": (8, 10.5), "MINF": (7.5, 10), "DCM": (5.5, 8), "HCM": (13, 19), "RV": (7.5, 10)}[group]
    H = {"NOR": (74, 90), "MINF": (78, 96), "DCM": (86, 104), "HCM": (66, 82), "RV": (72, 88)}[group]
    g["R"] = U(rng, *R)
    g["T0"] = U(rng, *T)
    g["H"] = U(rng, *H)
    g["Hm"] = g["H"] * (U(rng, 0.62, 0.8) if group == "DCM" else U(rng, 0.45, 0.62))
    g["Ta"] = max(4.0, g["T0"] * U(rng, 0.55, 0.9))
    g["taper"] = U(rng, 0.0, 0.12)
    tilt_mag, tilt_dir = U(rng, 0.0, 0.12), U(rng, 0, TWO_PI)
    g["tilt"] = [tilt_mag * math.cos(tilt_dir), tilt_mag * math.sin(tilt_dir)]
    g["endo_terms"] = rand_terms(rng, [(2, 0.08), (3, 0.035), (4, 0.025)])
    g["endo_twist"] = U(rng, -0.012, 0.012)          # rad / mm phase drift along the axis
    g["epi_terms"] = rand_terms(rng, [(1, 0.035), (2, 0.05), (3, 0.02)])
    g["theta_rv"] = math.radians(U(rng, 150, 185))   # scene frame: +x patient left, +y anterior
    # pathology specifics
    g["septal_bump"] = U(rng, 0.3, 0.7) if group == "HCM" else 0.0
    g["septal_w"] = math.radians(U(rng, 30, 55))
    if group == "MINF":
        g["inf_theta"] = U(rng, 0, TWO_PI)
        g["inf_w"] = math.radians(U(rng, 25, 45))
        lo = U(rng, 0.0, 0.35)
        g["inf_h"] = [lo * g["H"], min(1.0, lo + U(rng, 0.35, 0.6)) * g["H"]]
        g["inf_thin"] = U(rng, 0.4, 0.65)
    else:
        g["inf_thin"] = 0.0
    # ----- function
    ef = {"NOR": (0.55, 0.70), "MINF": (0.25, 0.45), "DCM": (0.10, 0.33), "HCM": (0.65, 0.82), "RV": (0.50, 0.65)}[group]
    lsr = {"NOR": (0.83, 0.90), "MINF": (0.88, 0.95), "DCM": (0.92, 0.97), "HCM": (0.86, 0.93), "RV": (0.85, 0.92)}[group]
    g["ef_target"] = U(rng, *ef)
    g["ls"] = U(rng, *lsr)
    g["s_r"] = math.sqrt(max(0.05, (1.0 - g["ef_target"]) / g["ls"]))
    g["sr_terms"] = rand_terms(rng, [(1, 0.04), (2, 0.03)])
    # ----- basal outflow / partial ring
    g["d_out"] = U(rng, 7, 14)
    g["theta_out"] = g["theta_rv"] - math.radians(U(rng, 40, 70))
    g["w_out"] = math.radians(U(rng, 35, 65))
    # ----- papillary muscles and trabeculation
    base = g["theta_rv"] + math.pi
    pr = (3.8, 6.0) if group == "HCM" else (2.5, 4.8)
    g["pap"] = []
    for off in (U(rng, 30, 60), -U(rng, 45, 75)):
        g["pap"].append({"theta": base + math.radians(off), "frac": U(rng, 0.5, 0.75), "r": U(rng, *pr),
                         "h0": g["H"] * U(rng, 0.12, 0.3), "h1": g["H"] * U(rng, 0.6, 0.8)})
    g["trab_amount"] = U(rng, 0.0, 1.0)
    g["trab_m"] = int(rng.integers(9, 19))
    g["trab_depth"] = U(rng, 1.5, 3.5)
    g["trab_phase"] = U(rng, 0, TWO_PI)
    # ----- RV: an ellipse centred outside the septum, minus the LV epicardium
    RT = g["R"] + g["T0"]
    rvs = U(rng, 1.2, 1.45) if group == "RV" else (U(rng, 0.8, 1.0) if group == "DCM" else 1.0)
    g["rv_kd"] = U(rng, 0.5, 0.72)
    g["rv_b"] = RT * U(rng, 0.8, 1.0) * rvs
    g["rv_a"] = RT * U(rng, 1.2, 1.5) * rvs
    g["rv_h0"] = g["H"] * (U(rng, 0.08, 0.25) if group == "RV" else U(rng, 0.2, 0.42))
    g["rv_ext"] = U(rng, 6, 16)
    g["rv_terms"] = rand_terms(rng, [(2, 0.05), (3, 0.05), (4, 0.03)])
    g["rv_wall"] = U(rng, 3.0, 6.0) if group == "RV" else U(rng, 2.2, 4.0)
    rvef = {"NOR": (0.45, 0.62), "MINF": (0.35, 0.55), "DCM": (0.25, 0.45), "HCM": (0.45, 0.6), "RV": (0.18, 0.38)}[group]
    g["rvef_target"] = U(rng, *rvef)
    g["rv_sa"] = U(rng, 0.88, 0.96)
    g["rv_sb"] = min(0.98, max(0.4, (1.0 - g["rvef_target"]) / (g["rv_sa"] * g["ls"])) ** 1.0)
    # ----- atria / great vessels above the base (label 0)
    g["la"] = {"theta": math.radians(U(rng, 250, 290)), "dist": RT * U(rng, 0.45, 0.7),
               "a": U(rng, 18, 27), "b": U(rng, 14, 21), "rot": U(rng, 0, math.pi)}
    g["ra"] = {"theta": math.radians(U(rng, 200, 230)), "dist": RT * U(rng, 0.95, 1.3),
               "a": U(rng, 17, 25), "b": U(rng, 14, 20), "rot": U(rng, 0, math.pi)}
    g["ao"] = {"theta": math.radians(U(rng, 95, 140)), "dist": RT * U(rng, 0.2, 0.45), "r": U(rng, 11, 15)}
    # ----- epicardial fat
    g["fat_max"] = U(rng, 0.5, 6.0)
    g["fat_theta"] = U(rng, 0, TWO_PI)
    # ES epicardial shrink (used to pull the RV centre in)
    g["q_es"] = math.sqrt(g["s_r"] ** 2 * g["R"] ** 2 + (RT ** 2 - g["R"] ** 2) / g["ls"]) / RT

    # ----- body / surroundings (body frame: +x patient left, +y anterior, origin body centre)
    b = {}
    b["Bx"], b["By"] = U(rng, 120, 160), U(rng, 90, 125)
    b["fat"], b["mus"] = U(rng, 5, 22), U(rng, 7, 15)
    b["heart_pos"] = [U(rng, 18, 42), U(rng, 8, 28)]
    b["gamma"] = math.radians(U(rng, -12, 12))
    b["h_dia"] = g["H"] * U(rng, 0.05, 0.5)
    b["h_stom"] = b["h_dia"] - U(rng, 8, 25)
    b["spine_r"] = U(rng, 13, 18)
    b["canal_r"] = U(rng, 5, 7.5)
    b["ao_r"] = U(rng, 9, 13)
    b["ivc_r"] = U(rng, 8, 12)

    # ----- acquisition geometry
    a = {}
    a["dx"] = round(U(rng, 1.2, 1.9), 4)
    a["dy"] = a["dx"] if rng.random() < 0.85 else round(U(rng, 1.2, 1.9), 4)
    a["dz"] = float(rng.choice([6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 10.0]))
    a["thick"] = a["dz"] * U(rng, 0.75, 1.0)
    a["nx"] = int(rng.integers(90, 129)) * 2
    a["ny"] = a["nx"] if rng.random() < 0.4 else int(rng.integers(90, 129)) * 2
    a["h_top"] = g["H"] + U(rng, 0.2, 1.3) * a["dz"]
    n = int(math.ceil((a["h_top"] + g["Ta"]) / a["dz"])) + int(rng.integers(0, 2))
    a["nz"] = int(min(14, max(8, n)))
    a["alpha"] = U(rng, -0.6, 0.6)  # in-plane rotation of the scene (rad)
    fovx, fovy = a["nx"] * a["dx"], a["ny"] * a["dy"]
    ext = heart_extent(g)
    a["ext"] = ext
    lim_x = max(0.0, min(0.25 * fovx, fovx / 2 - 0.75 * ext))
    lim_y = max(0.0, min(0.25 * fovy, fovy / 2 - 0.75 * ext))
    a["cu"], a["cv"] = U(rng, -lim_x, lim_x), U(rng, -lim_y, lim_y)
    # slice normal (base -> apex) in RAS: roughly left, anterior, inferior, randomised
    nrm = np.array([-0.55, 0.5, -0.65]) + rng.normal(0, 0.15, 3)
    a["normal"] = (nrm / np.linalg.norm(nrm)).tolist()
    a["heart_world"] = [U(rng, -30, 30), U(rng, -40, 20), U(rng, -60, 40)]

    # ----- appearance
    ap = {}
    I = np.zeros(NT)
    I[AIR] = 0.0
    I[FAT] = U(rng, 0.65, 1.1)
    I[MUSCLE] = U(rng, 0.15, 0.32)
    I[LUNG] = U(rng, 0.02, 0.08)
    I[LIVER] = U(rng, 0.18, 0.42)
    I[BLOOD_LV] = 1.0
    I[MYO] = U(rng, 0.13, 0.35)
    I[MEDIAST] = U(rng, 0.3, 0.65)
    I[BONE] = U(rng, 0.3, 0.6)
    I[CSF] = U(rng, 0.6, 1.0)
    I[STOMACH] = U(rng, 0.05, 0.9)
    I[BLOOD_RV] = U(rng, 0.85, 1.05)
    I[VESSEL] = U(rng, 0.7, 1.1)
    I[ATRIUM] = U(rng, 0.8, 1.05)
    I[LUNGVES] = U(rng, 0.2, 0.55)
    ap["I"] = I.tolist()
    amp = np.full(NT, 0.04)
    amp[[MYO, LIVER, MUSCLE, MEDIAST]] = [U(rng, 0.04, 0.12), U(rng, 0.06, 0.15), 0.08, U(rng, 0.1, 0.2)]
    amp[[BLOOD_LV, BLOOD_RV, ATRIUM]] = U(rng, 0.02, 0.08)
    amp[AIR] = 0.0
    ap["tex_amp"] = amp.tolist()
    ap["gamma"] = U(rng, 0.8, 1.25)
    ap["snr"] = U(rng, 8, 40)
    ap["bias_lo"], ap["bias_hi"] = U(rng, 0.6, 0.85), U(rng, 1.15, 1.4)
    ap["max"] = U(rng, 300, 4000)
    # artefacts
    art = {}
    if rng.random() < 0.35:
        art["ghost"] = {"axis": int(rng.integers(0, 2)), "n": int(rng.integers(3, 9)), "amp": U(rng, 0.03, 0.12)}
    if rng.random() < 0.3:
        art["blur_sigma_px"] = U(rng, 0.4, 0.9)
    if rng.random() < 0.25:
        ks = rng.choice(a["nz"], size=int(rng.integers(1, 4)), replace=False)
        art["misreg_mm"] = {int(k): [U(rng, -6, 6), U(rng, -6, 6)] for k in ks}
    if rng.random() < 0.35:
        art["india_ink"] = U(rng, 0.4, 0.9)
    if rng.random() < 0.15:
        art["band"] = {"theta": U(rng, 0, math.pi), "off": U(rng, -0.3, 0.3), "curv": U(rng, -0.004, 0.004),
                       "w": U(rng, 2.0, 5.0), "depth": U(rng, 0.4, 0.85)}
    # info
    height = float(np.clip(rng.normal(171, 9), 150, 196))
    bmi = U(rng, 19, 31) if group != "DCM" else U(rng, 22, 34)
    weight = bmi * (height / 100) ** 2
    nbf = int(rng.integers(20, 31))
    es = int(round(nbf * U(rng, 0.33, 0.45)))
    info = {"ED": 1, "ES": max(2, es), "Group": group, "Height": round(height, 0),
            "NbFrame": nbf, "Weight": round(weight, 0)}
    return {"geo": g, "body": b, "acq": a, "app": ap, "art": art, "info": info}


def heart_extent(g):
    RT = g["R"] + g["T0"]
    e1 = RT * 1.1 + g["fat_max"]
    e2 = g["rv_kd"] * RT + max(g["rv_a"], g["rv_b"]) * 1.25 + g["rv_wall"] + g["fat_max"]
    e3 = max(g["la"]["dist"] + g["la"]["a"], g["ra"]["dist"] + g["ra"]["a"]) * 1.15 + 3
    tilt = math.hypot(*g["tilt"]) * (g["H"] + 15)
    return max(e1, e2, e3) + tilt + 10.0


# --------------------------------------------------------------------------- heart model

def lv_radii(g, th, h0, es, pe, pn, taper):
    """Endocardial and epicardial radius (mm) as a function of angle th at ED-equivalent height h0."""
    R, T0 = g["R"], g["T0"]
    re = (R + T0) * pe * taper * (1.0 + fourier(th, g["epi_terms"]))
    rn = R * pn * taper * (1.0 + fourier(th + g["endo_twist"] * h0, g["endo_terms"]))
    if g["septal_bump"] > 0:
        rn = rn - g["septal_bump"] * T0 * np.exp(-0.5 * (angdiff(th, g["theta_rv"]) / g["septal_w"]) ** 2) * pn
    w_inf = None
    if g["inf_thin"] > 0:
        lo, hi = g["inf_h"]
        wh = smoothstep((h0 - lo + 8) / 8) * smoothstep((hi + 8 - h0) / 8)
        w_inf = np.exp(-0.5 * (angdiff(th, g["inf_theta"]) / g["inf_w"]) ** 2) * wh
        rn = rn + g["inf_thin"] * np.maximum(re - rn, 0) * w_inf * (rn > 0)
    rn = np.where(rn > 0, np.minimum(rn, re - 2.0), 0.0)
    rn = np.maximum(rn, 0.0)
    if es:
        ls = g["ls"]
        sr = g["s_r"] * (1.0 + fourier(th, g["sr_terms"]))
        if w_inf is not None:
            sr = sr + (1.0 - sr) * 0.85 * w_inf
        rn_es = rn * sr
        re = np.sqrt(rn_es ** 2 + (re ** 2 - rn ** 2) / ls)
        rn = rn_es
    return rn, re

def heart(g, x, y, h, es):
    """Heart tissue and labels at heart-frame points (x, y) [mm] on the plane at
    height h [mm above the ED endocardial apex].  Returns (tissue int8 with -1 =
    no heart, label uint8)."""
    ls = g["ls"] if es else 1.0
    h0 = h / ls                                # ED-equivalent height (base descends at ES)
    tissue = np.full(x.shape, -1, np.int8)
    label = np.zeros(x.shape, np.uint8)
    H, Hm, R, T0, Ta = g["H"], g["Hm"], g["R"], g["T0"], g["Ta"]
    RT = R + T0
    xc = x - g["tilt"][0] * h0
    yc = y - g["tilt"][1] * h0
    r = np.hypot(xc, yc)
    th = np.arctan2(yc, xc)
    taper = 1.0 - g["taper"] * min(1.0, max(0.0, (h0 - Hm) / max(1.0, H - Hm)))
    pe = prof(h0 + Ta, Hm + Ta)
    pn = prof(h0, Hm)
    lv_on = (h0 <= H) and pe > 0

    # ---------------- epicardial fat (lowest priority)
    grooves = np.exp(-0.5 * (angdiff(th, g["theta_rv"] + 1.2) / 0.25) ** 2) + \
        np.exp(-0.5 * (angdiff(th, g["theta_rv"] - 1.2) / 0.25) ** 2)
    fat_t = g["fat_max"] * (np.clip(1.3 * np.cos(th - g["fat_theta"]) - 0.3, 0, 1) + grooves) \
        * (0.6 + (max(h0, 0) / H) ** 3)

    # ---------------- LV radii
    if lv_on:
        rn, re = lv_radii(g, th, h0, es, pe, pn, taper)
        in_epi = r < re
        in_cav = r < rn
        # basal outflow: partial myocardial ring
        gap = np.zeros(x.shape, bool)
        if h0 > H - g["d_out"]:
            wfrac = (h0 - (H - g["d_out"])) / g["d_out"]
            gap = np.abs(angdiff(th, g["theta_out"])) < wfrac * g["w_out"]
        fat_lv = r < re + fat_t
    else:
        in_epi = in_cav = gap = fat_lv = np.zeros(x.shape, bool)
        re = rn = None

    # ---------------- RV (ellipse minus LV epicardium)
    rv_cav = rv_wall = fat_rv = np.zeros(x.shape, bool)
    if g["rv_h0"] < h0 <= H + g["rv_ext"]:
        hm_rv = g["rv_h0"] + 0.35 * (H - g["rv_h0"])
        prv = prof(h0 - g["rv_h0"], hm_rv - g["rv_h0"])
        up = min(1.0, max(0.0, (h0 - H) / g["rv_ext"]))
        shrink = 1.0 - 0.4 * up
        rt_mean = RT * (pe if lv_on else 1.0) * taper * (g["q_es"] if es else 1.0)
        d = g["rv_kd"] * rt_mean
        a_ = g["rv_a"] * prv * shrink * (g["rv_sa"] if es else 1.0)
        b_ = g["rv_b"] * prv * shrink * (g["rv_sb"] if es else 1.0)
        tc = g["theta_rv"] - math.radians(45) * up
        if a_ > 1 and b_ > 1:
            dx_, dy_ = xc - d * math.cos(tc), yc - d * math.sin(tc)
            p = dx_ * math.cos(tc) + dy_ * math.sin(tc)
            q = -dx_ * math.sin(tc) + dy_ * math.cos(tc)
            pb, qa = p / b_, q / a_
            rho = np.hypot(pb, qa)
            phi = np.arctan2(pb, qa)
            rb = 1.0 + fourier(phi, g["rv_terms"])
            rloc = np.hypot(p, q) / np.maximum(rho, 1e-6)
            dist = (rho - rb) * rloc
            rv_cav = (dist < 0) & ~in_epi
            rv_wall = (dist >= 0) & (dist < g["rv_wall"]) & ~in_epi
            fat_rv = (dist < g["rv_wall"] + 0.8 * fat_t) & ~in_epi

    # ---------------- atria and aortic root above the base (label 0)
    atr_blood = atr_wall = atr_fat = np.zeros(x.shape, bool)
    if h0 > H - 3:
        grow = min(1.0, (h0 - (H - 3)) / 10.0) * (1.12 if es else 1.0)
        for key in ("la", "ra"):
            c = g[key]
            cx, cy = c["dist"] * math.cos(c["theta"]), c["dist"] * math.sin(c["theta"])
            ca, sa = math.cos(c["rot"]), math.sin(c["rot"])
            px, py = (xc - cx) * ca + (yc - cy) * sa, -(xc - cx) * sa + (yc - cy) * ca
            aa, bb = c["a"] * grow, c["b"] * grow
            if aa < 1:
                continue
            e = np.hypot(px / aa, py / bb)
            atr_blood = atr_blood | (e < 1.0)
            atr_wall = atr_wall | (e < 1.0 + 2.0 / bb)
            atr_fat = atr_fat | (e < 1.0 + 5.0 / bb)
        if h0 > H + 3:
            c = g["ao"]
            cx, cy = c["dist"] * math.cos(c["theta"]), c["dist"] * math.sin(c["theta"])
            dd = np.hypot(xc - cx, yc - cy)
            atr_blood = atr_blood | (dd < c["r"])
            atr_wall = atr_wall | (dd < c["r"] + 1.5)
            atr_fat = atr_fat | (dd < c["r"] + 5.0)

    # ---------------- paint (low to high priority)
    tissue[fat_lv | fat_rv | atr_fat] = FAT
    tissue[atr_wall] = MYO
    tissue[atr_blood] = ATRIUM
    tissue[rv_wall] = MYO
    tissue[rv_cav] = BLOOD_RV
    label[rv_cav] = 1
    if lv_on:
        myo = in_epi & ~in_cav & ~gap
        tissue[myo] = MYO
        label[myo] = 2
        cav = in_cav | (in_epi & gap)
        tissue[cav] = BLOOD_LV
        label[cav] = 3
        label[atr_blood & ~in_epi] = 0
        # papillary muscles: dark blobs, labelled as cavity
        for pm in g["pap"]:
            if not (pm["h0"] < h0 < pm["h1"]):
                continue
            s = math.sin(math.pi * (h0 - pm["h0"]) / (pm["h1"] - pm["h0"])) ** 0.5
            rad = pm["r"] * s * (1.15 if es else 1.0)
            rn_p = float(lv_radii(g, np.array([pm["theta"]]), h0, es, pe, pn, taper)[0][0])
            if rn_p <= 0 or rad < 0.5:
                continue
            pos = pm["frac"] * rn_p + (0.12 * rn_p if es else 0.0)
            px, py = pos * math.cos(pm["theta"]) , pos * math.sin(pm["theta"])
            blob = (np.hypot(xc - px, yc - py) < rad) & in_cav
            tissue[blob] = MYO
        # trabeculation near the endocardium
        if g["trab_amount"] > 0.05 and h0 < 0.85 * H:
            ph = g["trab_phase"]
            depth = g["trab_depth"] * (1.0 + 0.5 * np.cos(th - g["theta_rv"] - math.pi)) \
                * (0.35 + 0.65 * np.abs(np.cos(2.3 * th + 0.05 * h0 + 2 * ph)))
            band = in_cav & (r > rn - depth)
            pat = np.cos(g["trab_m"] * th + 1.5 * np.sin(3 * th + 0.08 * h0 + ph)) \
                + 0.7 * np.cos((g["trab_m"] + 5) * th - 0.11 * h0 + 3 * ph) \
                + 0.6 * np.cos(7 * th + 0.05 * h0 + 5 * ph)
            trab = band & (pat > 1.5 - 1.1 * g["trab_amount"])
            tissue[trab] = MYO
    return tissue, label


# --------------------------------------------------------------------------- surroundings
def make_lung_vessel_field(rng, h_lo, h_hi):
    nx, ny = 201, 161
    nh = int((h_hi - h_lo) / 3.0) + 3
    f = ndimage.gaussian_filter(rng.standard_normal((nx, ny, nh)).astype(np.float32), (0.7, 0.7, 1.2))
    thr = np.quantile(f, 0.965)
    return {"mask": f > thr, "h_lo": h_lo}


def background(b, lv, bx, by, h):
    """Body tissues at body-frame points (bx, by) [mm] on the plane at height h."""
    t = np.full(bx.shape, AIR, np.int8)
    Bx, By = b["Bx"], b["By"]
    e_out = (bx / Bx) ** 2 + (by / By) ** 2
    t[e_out < 1] = FAT
    ix, iy = Bx - b["fat"], By - b["fat"]
    t[(bx / ix) ** 2 + (by / iy) ** 2 < 1] = MUSCLE
    cx, cy = ix - b["mus"], iy - b["mus"]
    thor = (bx / cx) ** 2 + (by / cy) ** 2 < 1
    t[thor] = MEDIAST
    # lungs (shrink below the diaphragm)
    below = b["h_dia"] - h
    sr = math.sqrt(max(0.0, 1 - max(0.0, below) / 35.0))
    sl = math.sqrt(max(0.0, 1 - max(0.0, below - 15) / 40.0))
    lungs = np.zeros(bx.shape, bool)
    if sr > 0:
        lungs |= ((bx + 0.5 * cx) / (0.47 * cx * sr)) ** 2 + ((by + 0.05 * cy) / (0.85 * cy)) ** 2 < 1
    if sl > 0:
        lungs |= ((bx - 0.55 * cx) / (0.42 * cx * sl)) ** 2 + ((by + 0.1 * cy) / (0.8 * cy)) ** 2 < 1
    lungs &= thor
    t[lungs] = LUNG
    m = lv["mask"]
    ih = int(round((h - lv["h_lo"]) / 3.0))
    ih = min(max(ih, 0), m.shape[2] - 1)
    gx = np.clip(np.rint((bx + 200) / 2).astype(np.int32), 0, m.shape[0] - 1)
    gy = np.clip(np.rint((by + 160) / 2).astype(np.int32), 0, m.shape[1] - 1)
    t[lungs & m[gx, gy, ih]] = LUNGVES
    # liver under the right hemidiaphragm, stomach under the left
    if below > 0:
        s = math.sqrt(min(1.0, below / 25.0))
        liver = ((bx + 0.3 * cx) / (0.65 * cx * s)) ** 2 + ((by + 0.1 * cy) / (0.8 * cy * s)) ** 2 < 1
        t[liver & thor] = LIVER
        t[(np.hypot(bx + 0.05 * cx, by + 0.35 * cy) < b["ivc_r"]) & thor] = VESSEL
    if h < b["h_stom"]:
        s = math.sqrt(min(1.0, (b["h_stom"] - h) / 20.0))
        st = ((bx - 0.5 * cx) / (35 * s)) ** 2 + ((by - 0.05 * cy) / (30 * s)) ** 2 < 1
        t[st & thor] = STOMACH
    # spine, paraspinal muscles, descending aorta
    sy = -By + b["fat"] + 45
    for sgn in (-1, 1):
        t[((bx - sgn * 28) / 24) ** 2 + ((by - (sy - 22)) / 20) ** 2 < 1] = MUSCLE
    t[np.hypot(bx, by - sy) < b["spine_r"]] = BONE
    t[np.hypot(bx, by - (sy - b["spine_r"] - b["canal_r"] - 2)) < b["canal_r"]] = CSF
    t[np.hypot(bx - (0.75 * b["spine_r"] + b["ao_r"] + 2), by - (sy + 0.7 * b["spine_r"])) < b["ao_r"]] = VESSEL
    return t


# --------------------------------------------------------------------------- rendering
def render(P, lvf):
    """Render ED and ES: returns {False: (fractions, labels), True: (...)} where
    fractions[t, x, y, z] is the partial-volume fraction of tissue t."""
    g, b, a = P["geo"], P["body"], P["acq"]
    nx, ny, nz = a["nx"], a["ny"], a["nz"]
    dx, dy, dz = a["dx"], a["dy"], a["dz"]
    Ra = rot2(a["alpha"]) @ np.diag([1.0, -1.0])    # image v runs posterior (display rows go down)
    Rg = rot2(b["gamma"])
    hp = b["heart_pos"]
    misreg = P["art"].get("misreg_mm", {})

    def scene(i, j, k):
        """pixel (fractional) indices -> scene coords (mm, heart centre at origin)."""
        u = ((i - (nx - 1) / 2.0) * dx - a["cu"]).astype(np.float32)
        v = ((j - (ny - 1) / 2.0) * dy - a["cv"]).astype(np.float32)
        sh = misreg.get(k)
        if sh is not None:
            u = u - np.float32(sh[0])
            v = v - np.float32(sh[1])
        return (np.float32(Ra[0, 0]) * u + np.float32(Ra[0, 1]) * v,
                np.float32(Ra[1, 0]) * u + np.float32(Ra[1, 1]) * v)

    def to_body(sx, sy):
        return (np.float32(Rg[0, 0]) * sx + np.float32(Rg[0, 1]) * sy + np.float32(hp[0]),
                np.float32(Rg[1, 0]) * sx + np.float32(Rg[1, 1]) * sy + np.float32(hp[1]))

    def sub_grid(i0, i1, j0, j1, f):
        o = (np.arange(f) + 0.5) / f - 0.5
        ii = (np.arange(i0, i1)[:, None] + o[None, :]).ravel()
        jj = (np.arange(j0, j1)[:, None] + o[None, :]).ravel()
        return np.meshgrid(ii, jj, indexing="ij")

    def fractions(t, ni, nj, f):
        pid = (np.arange(ni)[:, None] * nj + np.arange(nj)[None, :])
        pid = np.repeat(np.repeat(pid, f, 0), f, 1)
        c = np.bincount((pid.ravel() * NT + t.ravel()).astype(np.int64), minlength=ni * nj * NT)
        return c.reshape(ni, nj, NT).transpose(2, 0, 1).astype(np.float32) / (f * f * NSUB)

    # generous heart box (pixel indices); refined per slice on a coarse grid
    ext = a["ext"]
    shmax = max([0.0] + [math.hypot(*s) for s in misreg.values()])
    cx_i = a["cu"] / dx + (nx - 1) / 2.0
    cy_j = a["cv"] / dy + (ny - 1) / 2.0
    i0, i1 = max(0, int(cx_i - (ext + shmax) / dx) - 1), min(nx, int(cx_i + (ext + shmax) / dx) + 2)
    j0, j1 = max(0, int(cy_j - (ext + shmax) / dy) - 1), min(ny, int(cy_j + (ext + shmax) / dy) + 2)
    II_bg, JJ_bg = sub_grid(0, nx, 0, ny, SUPER_BG)
    Ic, Jc = np.meshgrid(np.arange(i0, i1, dtype=float), np.arange(j0, j1, dtype=float), indexing="ij")
    offs = ((np.arange(NSUB) + 0.5) / NSUB - 0.5) * a["thick"]
    bgfrac = np.zeros((NT, nx, ny, nz), np.float32)
    out = {es: (None, np.zeros((nx, ny, nz), np.uint8)) for es in (False, True)}
    heart_boxes = {es: [] for es in (False, True)}
    for k in range(nz):
        hc = a["h_top"] - k * dz
        sxb, syb = scene(II_bg, JJ_bg, k)
        bxb, byb = to_body(sxb, syb)
        for o in offs:
            bgfrac[:, :, :, k] += fractions(background(b, lvf, bxb, byb, hc + o), nx, ny, SUPER_BG)
        sxc, syc = scene(Ic, Jc, k)
        for es in (False, True):
            # coarse pass: labels at slice centre and the heart's footprint over the slab
            ht, lab = heart(g, sxc, syc, hc, es)
            out[es][1][i0:i1, j0:j1, k] = lab
            foot = ht >= 0
            for o in (offs[0], offs[-1]):
                foot |= heart(g, sxc, syc, hc + o, es)[0] >= 0
            if not foot.any():
                heart_boxes[es].append(None)
                continue
            fi, fj = np.nonzero(foot)
            bi0, bi1 = max(0, i0 + fi.min() - 2), min(nx, i0 + fi.max() + 3)
            bj0, bj1 = max(0, j0 + fj.min() - 2), min(ny, j0 + fj.max() + 3)
            heart_boxes[es].append((bi0, bi1, bj0, bj1))
    for es in (False, True):
        frac = bgfrac.copy() if not es else bgfrac
        for k in range(nz):
            box = heart_boxes[es][k]
            if box is None:
                continue
            bi0, bi1, bj0, bj1 = box
            hc = a["h_top"] - k * dz
            II, JJ = sub_grid(bi0, bi1, bj0, bj1, SUPER)
            sx, sy = scene(II, JJ, k)
            bx, by = to_body(sx, sy)
            fh = np.zeros((NT, bi1 - bi0, bj1 - bj0), np.float32)
            for o in offs:
                t = background(b, lvf, bx, by, hc + o)
                ht, _ = heart(g, sx, sy, hc + o, es)
                t = np.where(ht >= 0, ht, t)
                fh += fractions(t, bi1 - bi0, bj1 - bj0, SUPER)
            frac[:, bi0:bi1, bj0:bj1, k] = fh
        out[es] = (frac, out[es][1])
    return out


def appearance(P, frac, labels, rng_img, static):
    ap, art, a = P["app"], P["art"], P["acq"]
    I = np.asarray(ap["I"], np.float32)
    amp = np.asarray(ap["tex_amp"], np.float32)
    tex = static["tex"]
    img = np.einsum("t,txyz->xyz", I, frac) + tex * np.einsum("t,txyz->xyz", I * amp, frac)
    if "india_ink" in art:       # fat/water cancellation at interfaces (bSSFP)
        ff = frac[FAT]
        img *= 1.0 - art["india_ink"] * 4.0 * ff * (1.0 - ff)
    img = np.maximum(img, 0.0) ** ap["gamma"]
    if "blur_sigma_px" in art:
        s = art["blur_sigma_px"]
        img = ndimage.gaussian_filter(img, (s, s * a["dx"] / a["dy"], 0))
    if "band" in art:
        img *= static["band"]
    img *= static["bias"]
    if "ghost" in art:
        gh = art["ghost"]
        m = ndimage.gaussian_filter((ndimage.binary_dilation(labels > 0, iterations=3)).astype(np.float32), (2, 2, 0))
        src = img * m
        n = img.shape[gh["axis"]]
        for mm in (1, 2, -1, -2):
            img = img + gh["amp"] / abs(mm) * np.roll(src, int(round(mm * n / gh["n"])), axis=gh["axis"])
    sigma = 1.0 / ap["snr"]
    n1 = rng_img.normal(0, sigma, img.shape).astype(np.float32)
    n2 = rng_img.normal(0, sigma, img.shape).astype(np.float32)
    return np.sqrt((img + n1) ** 2 + n2 ** 2)


def static_fields(P, rng):
    a, art = P["acq"], P["art"]
    nx, ny, nz = a["nx"], a["ny"], a["nz"]
    tex = ndimage.gaussian_filter(rng.standard_normal((nx, ny, nz)).astype(np.float32), (2.0, 2.0, 0.6))
    tex /= max(1e-6, float(tex.std()))
    u = (np.arange(nx) - (nx - 1) / 2.0) * a["dx"]
    v = (np.arange(ny) - (ny - 1) / 2.0) * a["dy"]
    w = (np.arange(nz) - (nz - 1) / 2.0) * a["dz"]
    Uu, Vv, Ww = np.meshgrid(u, v, w, indexing="ij")
    bias = np.full((nx, ny, nz), U(rng, 0.2, 0.6), np.float32)
    fov = max(nx * a["dx"], ny * a["dy"])
    for _ in range(int(rng.integers(2, 5))):
        c = rng.uniform(-0.6, 0.6, 3) * np.array([nx * a["dx"], ny * a["dy"], nz * a["dz"]])
        s = U(rng, 0.25, 0.7) * fov
        bias += U(rng, 0.3, 1.0) * np.exp(-((Uu - c[0]) ** 2 + (Vv - c[1]) ** 2 + (Ww - c[2]) ** 2) / (2 * s * s))
    lo, hi = P["app"]["bias_lo"], P["app"]["bias_hi"]
    bias = lo + (hi - lo) * (bias - bias.min()) / max(1e-6, float(bias.max() - bias.min()))
    out = {"tex": tex, "bias": bias.astype(np.float32)}
    if "band" in art:
        bd = art["band"]
        c, s = math.cos(bd["theta"]), math.sin(bd["theta"])
        along = Uu * c + Vv * s
        across = -Uu * s + Vv * c - bd["off"] * fov / 2 - bd["curv"] * along ** 2
        out["band"] = (1.0 - bd["depth"] * np.exp(-0.5 * (across / bd["w"]) ** 2)).astype(np.float32)
    return out


def affine_of(P):
    """Voxel -> RAS world (mm), consistent with the rendered anatomy."""
    a = P["acq"]
    n = np.asarray(a["normal"])
    ant = np.array([0.0, 1.0, 0.0])
    e_up = ant - ant.dot(n) * n
    e_up /= np.linalg.norm(e_up)
    e_right = np.cross(n, e_up)
    if e_right[0] > 0:            # scene +x must point to patient left (-x in RAS)
        e_right = -e_right
    E = np.stack([e_right, e_up], 1)          # 3x2: scene (x, y) -> world
    M = E @ rot2(a["alpha"]) @ np.diag([1.0, -1.0])   # image (u, v) -> world (same map as render())
    nx, ny = a["nx"], a["ny"]
    A = np.eye(4)
    A[:3, 0] = M[:, 0] * a["dx"]
    A[:3, 1] = M[:, 1] * a["dy"]
    A[:3, 2] = n * a["dz"]                     # k increases base -> apex
    hw = np.asarray(a["heart_world"])         # world position of the heart centre on slice 0
    A[:3, 3] = hw - M @ np.array([(nx - 1) / 2.0 * a["dx"] + a["cu"], (ny - 1) / 2.0 * a["dy"] + a["cv"]])
    return A


def save_nifti(arr, A, path, dtype):
    img = nib.Nifti1Image(arr.astype(dtype), A)
    img.header.set_data_dtype(dtype)
    img.set_qform(A, code=1)
    img.set_sform(A, code=1)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, path)


def make_patient(out, seed, pnum):
    t0 = time.time()
    rng = np.random.default_rng([int(seed), int(pnum)])
    P = sample_patient(rng, pnum)
    a = P["acq"]
    lo = a["h_top"] - a["nz"] * a["dz"] - 10
    lvf = make_lung_vessel_field(rng, lo, a["h_top"] + 10)
    static = static_fields(P, rng)
    A = affine_of(P)
    name = "patient%03d" % pnum
    pdir = os.path.join(out, name)
    os.makedirs(pdir, exist_ok=True)
    info = P["info"]
    vox_ml = a["dx"] * a["dy"] * a["dz"] / 1000.0
    frames = {}
    scale = None
    rendered = render(P, lvf)
    for tag, fno, es in (("ED", info["ED"], False), ("ES", info["ES"], True)):
        frac, lab = rendered[es]
        img = appearance(P, frac, lab, np.random.default_rng([int(seed), int(pnum), fno]), static)
        if scale is None:
            scale = P["app"]["max"] / float(img.max())
        data = np.clip(np.rint(img * scale), 0, 32767).astype(np.int16)
        base = os.path.join(pdir, "%s_frame%02d" % (name, fno))
        save_nifti(data, A, base + ".nii.gz", np.int16)
        save_nifti(lab, A, base + "_gt.nii.gz", np.uint8)
        cnt = np.bincount(lab.ravel(), minlength=4)
        frames[tag] = {"frame": fno,
                       "voxels": {str(i): int(cnt[i]) for i in range(4)},
                       "lv_cavity_ml": round(cnt[3] * vox_ml, 3),
                       "rv_cavity_ml": round(cnt[1] * vox_ml, 3),
                       "myocardium_ml": round(cnt[2] * vox_ml, 3)}
    with open(os.path.join(pdir, "Info.cfg"), "w") as f:
        f.write("ED: %d\nES: %d\nGroup: %s\nHeight: %.1f\nNbFrame: %d\nWeight: %.1f\n"
                % (info["ED"], info["ES"], info["Group"], info["Height"], info["NbFrame"], info["Weight"]))
    ed, es_ = frames["ED"], frames["ES"]
    lvef = 100.0 * (ed["lv_cavity_ml"] - es_["lv_cavity_ml"]) / ed["lv_cavity_ml"] if ed["lv_cavity_ml"] > 0 else None
    rvef = 100.0 * (ed["rv_cavity_ml"] - es_["rv_cavity_ml"]) / ed["rv_cavity_ml"] if ed["rv_cavity_ml"] > 0 else None
    g = P["geo"]
    truth = {"patient": name, "group": info["Group"], "generator": "phantom2", "seed": int(seed),
             "shape": [a["nx"], a["ny"], a["nz"]], "spacing_mm": [a["dx"], a["dy"], a["dz"]],
             "slice_thickness_mm": round(a["thick"], 3), "voxel_volume_ml": vox_ml,
             "frames": frames,
             "lv_ef_percent": None if lvef is None else round(lvef, 2),
             "rv_ef_percent": None if rvef is None else round(rvef, 2),
             "lv_myocardium_mass_ed_g": round(1.05 * ed["myocardium_ml"], 3),
             "params": {"lv_ef_target": round(g["ef_target"], 3), "rv_ef_target": round(g["rvef_target"], 3),
                        "snr": round(P["app"]["snr"], 2), "gamma": round(P["app"]["gamma"], 3),
                        "bias_range": [round(P["app"]["bias_lo"], 3), round(P["app"]["bias_hi"], 3)],
                        "artefacts": sorted(P["art"].keys()),
                        "artefact_details": P["art"],
                        "heart_offset_mm": [round(a["cu"], 1), round(a["cv"], 1)],
                        "inplane_rotation_deg": round(math.degrees(a["alpha"]), 1)}}
    with open(os.path.join(pdir, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
    return truth, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--patients", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--first", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    summary = {}
    for p in range(args.first, args.first + args.patients):
        truth, dt = make_patient(args.out, args.seed, p)
        summary[truth["patient"]] = truth
        print("%s %-4s shape=%s LVEDV=%.1f LVESV=%.1f EF=%s RVEDV=%.1f (%.1fs)" % (
            truth["patient"], truth["group"], truth["shape"], truth["frames"]["ED"]["lv_cavity_ml"],
            truth["frames"]["ES"]["lv_cavity_ml"], truth["lv_ef_percent"],
            truth["frames"]["ED"]["rv_cavity_ml"], dt), flush=True)
    # top-level summary (merged with any patients already listed there)
    path = os.path.join(args.out, "truth.json")
    old = {}
    if os.path.exists(path):
        try:
            with open(path) as f:
                old = json.load(f)
        except Exception:
            old = {}
    old.update(summary)
    with open(path, "w") as f:
        json.dump(dict(sorted(old.items())), f, indent=1)


if __name__ == "__main__":
    main()
