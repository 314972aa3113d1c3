#!/usr/bin/env bash
# One training step of the AutoSAM head (batch 4, vit_b-sized 256 x 64 x 64 embeddings,
# 4 classes: forward, batch loss, backward, Adam): PyTorch CPU (2 threads) vs. autosam, same
# SAM mask decoder weights, one sitting. Prints both timings and the ratio ours/PyTorch (median).
#
# Usage:
#   make build                                   # or point AUTOSAM at another release build
#   bench/head_step_vs_pytorch.sh [STEPS]        # STEPS timed steps after one warm-up (default 3)
#
# Environment:
#   AUTOSAM   our binary (default .build/release/autosam)
#   PYTHON    interpreter with torch + segment_anything (default /usr/bin/python3; Debian's
#             python3-torch, then `$PYTHON -m pip install --break-system-packages segment_anything`)
#   VITB_DIR  folder of the random vit_b checkpoint (default /tmp/vitb; vit_b_random.pth is
#             generated there by scripts/fixtures/vit_b_parity.py --seed 0 when missing, ~1-2 min)
#   THREADS   threads for both (default 2: torch.set_num_threads, AUTOSAM_THREADS)
# The machine is shared: compare the ratio from one sitting, not absolute times.
set -euo pipefail

STEPS=${1:-3}
cd "$(dirname "$0")/.."
AUTOSAM=${AUTOSAM:-.build/release/autosam}
PYTHON=${PYTHON:-/usr/bin/python3}
DIR=${VITB_DIR:-/tmp/vitb}
CKPT=$DIR/vit_b_random.pth
THREADS=${THREADS:-2}

[[ -x $AUTOSAM ]] || { echo "no binary at $AUTOSAM (run make build or set AUTOSAM)" >&2; exit 1; }
if [[ ! -f $CKPT ]]; then
    echo "== generating $CKPT"
    "$PYTHON" scripts/fixtures/vit_b_parity.py --out "$DIR" --seed 0
fi

echo "== environment"
echo "nproc $(nproc); threads $THREADS; torch $("$PYTHON" -c 'import torch; print(torch.__version__)'); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); binary $AUTOSAM"

echo "== PyTorch ($STEPS steps; load average $(cut -d' ' -f1-3 /proc/loadavg))"
TORCH_OUT=$(OMP_NUM_THREADS=$THREADS "$PYTHON" bench/head_step_pytorch.py --checkpoint "$CKPT" --batch 4 --classes 4 \
    --steps "$STEPS" --threads "$THREADS")
echo "$TORCH_OUT" | grep -v '^TORCH_RESULT'
TORCH_LINE=$(echo "$TORCH_OUT" | grep '^TORCH_RESULT')
field() { echo "$1" | sed -n "s/.*$2=\([^ ]*\).*/\1/p"; }
T_MED=$(field "$TORCH_LINE" median); T_MIN=$(field "$TORCH_LINE" min)

echo "== autosam ($STEPS steps; load average $(cut -d' ' -f1-3 /proc/loadavg))"
OURS_OUT=$(AUTOSAM_THREADS=$THREADS "$AUTOSAM" bench head --checkpoint "$CKPT" --batch 4 --steps "$STEPS")
echo "$OURS_OUT"
OURS_LINE=$(echo "$OURS_OUT" | grep 'median')
O_MED=$(echo "$OURS_LINE" | sed -n 's/.*median \([0-9.]*\) s.*/\1/p'); O_MIN=$(echo "$OURS_LINE" | sed -n 's/.*min \([0-9.]*\) s.*/\1/p')

echo "== result (load average $(cut -d' ' -f1-3 /proc/loadavg))"
printf '| engine | median s/step | min s/step |\n|---|---|---|\n'
printf '| PyTorch %s (%s threads) | %s | %s |\n' "$("$PYTHON" -c 'import torch; print(torch.__version__)')" "$THREADS" "$T_MED" "$T_MIN"
printf '| autosam | %s | %s |\n' "$O_MED" "$O_MIN"
awk -v o="$O_MED" -v t="$T_MED" -v om="$O_MIN" -v tm="$T_MIN" \
    'BEGIN { printf "ratio ours/PyTorch: median %.3f, min %.3f (goal <= 0.7)\n", o / t, om / tm }'
