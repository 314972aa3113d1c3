#!/usr/bin/env python3
"""SAM image encoder through ONNX Runtime (CPU). Helper for bench/encoder_vs_onnxruntime.sh.

  export --checkpoint CKPT --onnx OUT.onnx
      Builds the official model (segment_anything.build_sam_vit_b(checkpoint=CKPT)),
      torch.onnx.export's sam.image_encoder with a 1x3x1024x1024 float32 input (opset 17),
      and writes OUT.ref.npz: a fixed random input and PyTorch's output on it.
  bench --onnx OUT.onnx [--runs N]
      Default CPU EP, default threading, graph optimisations ALL. One warm-up run (checked
      against OUT.ref.npz: max|ORT - PyTorch|), then N timed runs; prints median/min and
      the peak RSS of this process. Does not import torch, so the RSS is ORT's alone.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np


def ref_path(onnx_path: str) -> str:
    return os.path.splitext(onnx_path)[0] + ".ref.npz"


def export(args: argparse.Namespace) -> None:
    import warnings

    import torch
    from segment_anything import build_sam_vit_b

    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # pad/rel-pos sizes are fixed at 1024

    sam = build_sam_vit_b(checkpoint=args.checkpoint).eval()
    enc = sam.image_encoder
    image = torch.randn((1, 3, 1024, 1024), generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(enc, (image,), args.onnx, opset_version=17, do_constant_folding=True,
                          input_names=["image"], output_names=["embeddings"])
    t1 = time.perf_counter()
    with torch.no_grad():
        ref = enc(image)
    t2 = time.perf_counter()
    np.savez(ref_path(args.onnx), image=image.numpy(), embeddings=ref.numpy())
    print(f"exported {args.onnx} ({os.path.getsize(args.onnx) / 1e6:.0f} MB) in {t1 - t0:.1f} s; "
          f"PyTorch {torch.__version__} reference {tuple(ref.shape)} in {t2 - t1:.1f} s")


def bench(args: argparse.Namespace) -> None:
    import onnxruntime as ort

    ref = np.load(ref_path(args.onnx))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    t0 = time.perf_counter()
    sess = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0
    feed = {sess.get_inputs()[0].name: ref["image"]}

    t0 = time.perf_counter()
    out = sess.run(None, feed)[0]
    warm_s = time.perf_counter() - t0
    diff = float(np.abs(out - ref["embeddings"]).max())
    scale = float(np.abs(ref["embeddings"]).max())

    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    median = sorted(times)[len(times) // 2]  # same definition as `autosam bench encoder`
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: KiB

    print(f"onnxruntime {ort.__version__}, providers {sess.get_providers()}, session load {load_s:.1f} s, "
          f"warm-up {warm_s:.2f} s")
    print(f"check vs PyTorch: max|diff| {diff:.3g} (output absmax {scale:.3g}), shape {out.shape}")
    print(f"runs: {' '.join(f'{t:.3f}' for t in times)} s; median {median:.3f} s, min {min(times):.3f} s, "
          f"peak RSS {rss_gb:.2f} GB")
    # Machine-readable line for the shell script.
    print(f"ORT_RESULT median={median:.3f} min={min(times):.3f} rss_gb={rss_gb:.2f} "
          f"version={ort.__version__} maxdiff={diff:.3g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--onnx", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--onnx", required=True)
    b.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    export(args) if args.cmd == "export" else bench(args)


if __name__ == "__main__":
    main()
