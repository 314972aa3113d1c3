#!/usr/bin/env bash
# Retrains the embedded default head (Sources/AutoSAM/DefaultModel) from scratch: phantoms from
# a fixed seed, the embedded `demo` encoder, fixed training seeds. A rerun gives the same model.
# Usage: scripts/train_default_model.sh [BIN] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.build/release/autosam}
WORK=${2:-$(mktemp -d)}
HEAD=${AUTOSAM_DEFAULT_HEAD:-cnn}
EPOCHS=${AUTOSAM_DEFAULT_EPOCHS:-20}
# Later stages continue from the one before (fresh Adam state, another shuffle seed).
EPOCHS2=${AUTOSAM_DEFAULT_EPOCHS2:-30}
EPOCHS3=${AUTOSAM_DEFAULT_EPOCHS3:-30}
rm -rf "$WORK/phantoms"
"$BIN" phantom --out "$WORK/phantoms" --patients 10 --seed 4242 --no-cine
train=$(printf 'patient%03d,' $(seq 1 8)); train=${train%,}
"$BIN" fit --data "$WORK/phantoms" --train "$train" --validation patient009,patient010 \
  --head "$HEAD" --encoder demo --epochs "$EPOCHS" --seed 0 --cache "$WORK/cache" --out "$WORK/model1"
"$BIN" fit --data "$WORK/phantoms" --train "$train" --validation patient009,patient010 \
  --head "$HEAD" --encoder demo --epochs "$EPOCHS2" --seed 1 --cache "$WORK/cache" --out "$WORK/model2" \
  --init-model "$WORK/model1"
"$BIN" fit --data "$WORK/phantoms" --train "$train" --validation patient009,patient010 \
  --head "$HEAD" --encoder demo --epochs "$EPOCHS3" --seed 2 --cache "$WORK/cache" --out "$WORK/model" \
  --init-model "$WORK/model2"
mkdir -p Sources/AutoSAM/DefaultModel
cp "$WORK/model/head.safetensors" "$WORK/model/model.json" Sources/AutoSAM/DefaultModel/
echo "default model written to Sources/AutoSAM/DefaultModel (work files in $WORK)"
