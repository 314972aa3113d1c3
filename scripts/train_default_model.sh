#!/usr/bin/env bash
# Retrains the embedded default head (Sources/AutoSAM/DefaultModel) from scratch: phantoms from
# a fixed seed, the embedded `demo` encoder, a fixed training seed. A rerun gives the same model.
# Usage: scripts/train_default_model.sh [BIN] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.build/release/autosam}
WORK=${2:-$(mktemp -d)}
HEAD=${AUTOSAM_DEFAULT_HEAD:-cnn}
EPOCHS=${AUTOSAM_DEFAULT_EPOCHS:-120}
rm -rf "$WORK/phantoms"
"$BIN" phantom --out "$WORK/phantoms" --patients 18 --seed 4242 --no-cine
train=$(printf 'patient%03d,' $(seq 1 16)); train=${train%,}
"$BIN" fit --data "$WORK/phantoms" --train "$train" --validation patient017,patient018 \
  --head "$HEAD" --encoder demo --epochs "$EPOCHS" --seed 0 --cache "$WORK/cache" --out "$WORK/model"
mkdir -p Sources/AutoSAM/DefaultModel
cp "$WORK/model/head.safetensors" "$WORK/model/model.json" Sources/AutoSAM/DefaultModel/
echo "default model written to Sources/AutoSAM/DefaultModel (work files in $WORK)"
