#!/usr/bin/env bash
# SAM vit_b image encoder, one 1024x1024 image: ONNX Runtime (CPU) vs. autosam, same random
# vit_b checkpoint, one sitting. Prints both timings and the ratio ours/ORT (median).
#
# Usage:
#   make build                                   # or point AUTOSAM at another release build
#   bench/encoder_vs_onnxruntime.sh [RUNS]       # RUNS timed runs after one warm-up (default 3)
#
# Environment:
#   AUTOSAM  our binary (default .build/release/autosam)
#   PYTHON   interpreter with torch + segment_anything + onnxruntime (default /usr/bin/python3);
#            Debian: python3-torch, then `$PYTHON -m pip install --break-system-packages onnxruntime`
#            (if pip pulls in numpy 2, torch 1.13 breaks: `pip uninstall numpy` to restore Debian's)
#   VITB_DIR folder of the checkpoint and cached export (default /tmp/vitb)
#
# Files in $VITB_DIR: vit_b_random.pth (generated if missing by scripts/fixtures/vit_b_parity.py
# --seed 0, ~1-2 min), vit_b_random.encoder.onnx + .ref.npz (exported once, ~1-2 min; redone when
# the checkpoint is newer). ORT runs with its defaults (CPU EP, all cores, graph optimisations
# ALL) in its own process, without torch, so its peak RSS is ORT's own. Needs ~8 GB free RAM.
# The 2-core machine is shared: compare the ratio from one sitting, not absolute times.
set -euo pipefail

RUNS=${1:-3}
cd "$(dirname "$0")/.."
AUTOSAM=${AUTOSAM:-.build/release/autosam}
PYTHON=${PYTHON:-/usr/bin/python3}
DIR=${VITB_DIR:-/tmp/vitb}
CKPT=$DIR/vit_b_random.pth
ONNX=$DIR/vit_b_random.encoder.onnx

[[ -x $AUTOSAM ]] || { echo "no binary at $AUTOSAM (run make build or set AUTOSAM)" >&2; exit 1; }

if [[ ! -f $CKPT ]]; then
    echo "== generating $CKPT"
    "$PYTHON" scripts/fixtures/vit_b_parity.py --out "$DIR" --seed 0
fi
if [[ ! -f $ONNX || ! -f ${ONNX%.onnx}.ref.npz || $CKPT -nt $ONNX ]]; then
    echo "== exporting the image encoder to ONNX"
    "$PYTHON" bench/onnx_encoder.py export --checkpoint "$CKPT" --onnx "$ONNX"
fi

ORT_VERSION=$("$PYTHON" -c 'import onnxruntime; print(onnxruntime.__version__)')
echo "== environment"
echo "nproc $(nproc); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-(unset)}; OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-(unset)}"
echo "onnxruntime $ORT_VERSION; $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); binary $AUTOSAM"

echo "== ONNX Runtime ($RUNS runs; load average $(cut -d' ' -f1-3 /proc/loadavg))"
ORT_OUT=$("$PYTHON" bench/onnx_encoder.py bench --onnx "$ONNX" --runs "$RUNS")
echo "$ORT_OUT" | grep -v '^ORT_RESULT'
ORT_LINE=$(echo "$ORT_OUT" | grep '^ORT_RESULT')
field() { echo "$1" | sed -n "s/.*$2=\([^ ]*\).*/\1/p"; }
ORT_MED=$(field "$ORT_LINE" median); ORT_MIN=$(field "$ORT_LINE" min); ORT_RSS=$(field "$ORT_LINE" rss_gb)

run_ours() {  # $1 = precision
  echo "== autosam $1 ($RUNS runs; load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  local out line
  out=$("$AUTOSAM" bench encoder --checkpoint "$CKPT" --runs "$RUNS" --precision "$1")
  echo "$out" >&2
  line=$(echo "$out" | grep '^median ')
  printf '%s %s %s\n' "$(echo "$line" | sed -n 's/^median \([0-9.]*\) s.*/\1/p')" \
    "$(echo "$line" | sed -n 's/.*, min \([0-9.]*\) s.*/\1/p')" "$(echo "$line" | sed -n 's/.*peak RSS \([0-9.]*\) GB.*/\1/p')"
}
read -r FP32_MED FP32_MIN FP32_RSS < <(run_ours fp32)
read -r BF16_MED BF16_MIN BF16_RSS < <(run_ours bf16)

echo "== summary (vit_b encoder, 1x3x1024x1024, $RUNS runs after one warm-up)"
printf '%-22s median %7.3f s  min %7.3f s  peak RSS %5.2f GB\n' "onnxruntime $ORT_VERSION" "$ORT_MED" "$ORT_MIN" "$ORT_RSS"
printf '%-22s median %7.3f s  min %7.3f s  peak RSS %5.2f GB\n' "autosam fp32" "$FP32_MED" "$FP32_MIN" "$FP32_RSS"
printf '%-22s median %7.3f s  min %7.3f s  peak RSS %5.2f GB\n' "autosam bf16" "$BF16_MED" "$BF16_MIN" "$BF16_RSS"
awk -v o="$FP32_MED" -v b="$BF16_MED" -v r="$ORT_MED" 'BEGIN { printf "ratio ours/ORT (median): fp32 %.2f, bf16 %.2f\n", o / r, b / r }'
