#!/usr/bin/env bash
# Segments every phantom patient of an ACDC-layout folder with a head (default: the embedded
# one) and compares the stats of the predicted ED/ES label maps with the phantom truth
# (`autosam stats --check-truth`: LV volumes within 5%, EF within 3 points).
# Usage: [ROTATIONS=N] scripts/check_stats_against_truth.sh DATA [MODEL] [WORKDIR]
# (ROTATIONS: test-time rotations, overriding the model plan's; see autosam segment --help)
set -uo pipefail
DATA=$1; MODEL=${2:-}; OUT=${3:-$(mktemp -d)}
BIN=${AUTOSAM:-$(dirname "$0")/../.build/release/autosam}
mkdir -p "$OUT"
for p in "$DATA"/patient*; do
  id=$(basename "$p"); rm -rf "${OUT:?}/$id"; mkdir -p "$OUT/$id"
  cp "$p/Info.cfg" "$p/phantom_truth.json" "$OUT/$id/"
  for f in "$p"/*_frame??.nii.gz; do cp "$f" "$OUT/$id/"; done
  "$BIN" segment ${MODEL:+--model "$MODEL"} ${ROTATIONS:+--test-rotations "$ROTATIONS"} "$p" --out "$OUT/$id" > /dev/null || exit 1
  for f in "$OUT/$id"/*_pred.nii.gz; do mv "$f" "${f%_pred.nii.gz}_gt.nii.gz"; done
done
"$BIN" stats "$OUT" --check-truth
