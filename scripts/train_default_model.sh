#!/usr/bin/env bash
# Retrains the embedded default head (Sources/AutoSAM/DefaultModel) from scratch: phantoms from
# a fixed seed, the embedded `demo` encoder, a fixed training seed. A rerun gives the same model.
# Usage: [AUTOSAM_DEFAULT_HEAD=context] [AUTOSAM_DEFAULT_PATIENTS=24] [AUTOSAM_DEFAULT_EPOCHS=120] \
#        [AUTOSAM_DEFAULT_ENCODER=demo] [AUTOSAM_DEFAULT_FIT_OPTIONS="--views 8 --localize"] \
#          scripts/train_default_model.sh [BIN] [WORKDIR]
# (the embedded head: the context head on 24 training patients, the defaults; the encoder and
# the extra `fit` options are for candidates such as a LiteMedSAM head, docs/EXPERIMENT.md)
# The training state is kept in WORKDIR/state after every epoch: run the script again with the
# same WORKDIR after a stop (a kill, a session's end) and it goes on from the last epoch, to
# the same model (the embeddings too are cached in WORKDIR).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.build/release/autosam}
WORK=${2:-$(mktemp -d)}
HEAD=${AUTOSAM_DEFAULT_HEAD:-context}
EPOCHS=${AUTOSAM_DEFAULT_EPOCHS:-120}
ENCODER=${AUTOSAM_DEFAULT_ENCODER:-demo}
read -r -a EXTRA <<< "${AUTOSAM_DEFAULT_FIT_OPTIONS:-}"
# Training patients 1..N; the next two validate.
N=${AUTOSAM_DEFAULT_PATIENTS:-24}
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "AUTOSAM_DEFAULT_PATIENTS must be a positive whole number, not '$N'" >&2; exit 2; }
rm -rf "$WORK/phantoms"
"$BIN" phantom --out "$WORK/phantoms" --patients $((N + 2)) --seed 4242 --no-cine
train=$(printf 'patient%03d,' $(seq 1 "$N")); train=${train%,}
validation=$(printf 'patient%03d,patient%03d' $((N + 1)) $((N + 2)))
"$BIN" fit --data "$WORK/phantoms" --train "$train" --validation "$validation" \
  --head "$HEAD" --encoder "$ENCODER" --epochs "$EPOCHS" --seed 0 --cache "$WORK/cache" --state "$WORK/state" --out "$WORK/model" ${EXTRA[@]+"${EXTRA[@]}"}
mkdir -p Sources/AutoSAM/DefaultModel
cp "$WORK/model/head.safetensors" "$WORK/model/model.json" Sources/AutoSAM/DefaultModel/
echo "default model written to Sources/AutoSAM/DefaultModel (work files in $WORK)"
