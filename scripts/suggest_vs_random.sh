#!/usr/bin/env bash
# Issue 23, item 2: does a refit from the five studies `autosam suggest` names teach the head
# more than a refit from five random ones? Runs the real service:
#   1. a pool of POOL family-1 phantoms (ED/ES, seed 9191) is segmented by the daemon on the
#      embedded default head; `autosam suggest --count 5` picks five of them;
#   2. for the suggested five and for RANDOM draws of five (seeds 1, 2, ...), a fresh service
#      gets one validation case (another phantom) and the five as labelled items (their
#      phantom truth stands in for a person's corrections); its refit loop trains a candidate
#      (warm start from the embedded head, the configured epochs), promoted whatever it scores;
#   3. each candidate and the embedded head are evaluated on unseen patients: family 1 (TEST1)
#      and the independent family 2 (TEST2, never trained on).
# Usage: scripts/suggest_vs_random.sh WORK TEST1 TEST2 [POOL=20] [RANDOM=3]
# (TEST1: `autosam phantom --out DIR --patients 8 --seed 777 --no-cine`; TEST2:
# `python3 scripts/phantom2/make_phantoms.py --out DIR --patients 8 --seed ...`.)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${AUTOSAM:-.build/release/autosam}")
WORK=$(realpath -m "$1"); TEST1=$(realpath "$2"); TEST2=$(realpath "$3"); POOL=${4:-20}; RANDOM_DRAWS=${5:-3}
P=patient001,patient002,patient003,patient004,patient005,patient006,patient007,patient008
mkdir -p "$WORK"
[ -d "$WORK/pool" ] || "$BIN" phantom --out "$WORK/pool" --patients "$POOL" --seed 9191 --no-cine > /dev/null
[ -d "$WORK/val" ] || "$BIN" phantom --out "$WORK/val" --patients 1 --seed 9292 --first 900 --no-cine > /dev/null

service() {  # service DATA: writes the config, starts the daemon (its pid in SVC_PID)
  cat > "$1.toml" <<TOML
[paths]
data = "$1"
[inbox]
quiet_period_s = 600
poll_interval_s = 0.2
[refit]
enabled = true
every_n_volumes = 12
validation_volumes = 1
tolerance = 1.0
TOML
  "$BIN" watch --config "$1.toml" > "$1.log" 2>&1 &
  SVC_PID=$!
}

# 1. The pool, segmented by the embedded head; the suggestions.
if [ ! -f "$WORK/suggested.txt" ]; then
  rm -rf "$WORK/poolsvc"; service "$WORK/poolsvc"; pid=$SVC_PID
  for i in $(seq 1 200); do [ -d "$WORK/poolsvc/inbox" ] && break; sleep 0.2; done
  for p in "$WORK"/pool/patient*; do n=$(basename "$p"); mkdir "$WORK/poolsvc/inbox/.$n"; cp "$p"/*frame??.nii.gz "$p"/Info.cfg "$WORK/poolsvc/inbox/.$n/"; mv "$WORK/poolsvc/inbox/.$n" "$WORK/poolsvc/inbox/$n"; touch "$WORK/poolsvc/inbox/$n/.ready"; done
  until [ "$("$BIN" status --config "$WORK/poolsvc.toml" --count finished)" -ge "$POOL" ]; do sleep 1; done
  kill -TERM "$pid"; wait "$pid" || true
  "$BIN" suggest --config "$WORK/poolsvc.toml" --count 5 | tee "$WORK/suggest.out"
  awk '{ print $3 }' "$WORK/suggest.out" > "$WORK/suggested.txt"
fi

evaluate() {  # evaluate NAME MODEL_FOLDER|embedded
  local m=""; [ "$2" != embedded ] && m="--model $2"
  for d in f1:"$TEST1" f2:"$TEST2"; do
    "$BIN" evaluate $m --encoder demo --data "${d#*:}" --patients $P > "$WORK/eval_$1_${d%%:*}.txt" 2>&1
  done
  printf '%-12s family 1 %s | family 2 %s\n' "$1" \
    "$(grep '^mean over' "$WORK/eval_$1_f1.txt" | awk -F'|' '{ print $2 }')" "$(grep '^mean over' "$WORK/eval_$1_f2.txt" | awk -F'|' '{ print $2 }')"
}

# 2. One refit per arm.
arm() {  # arm NAME PATIENTS...
  local name=$1; shift
  local data="$WORK/arm_$name"
  if [ ! -f "$WORK/version_$name" ]; then
    rm -rf "$data"; service "$data"; local pid=$SVC_PID
    for i in $(seq 1 200); do [ -d "$data/labels" ] && break; sleep 0.2; done
    local start; start=$(date +%s)
    mkdir "$data/labels/.a_validation"; cp "$WORK"/val/patient900/*frame??*.nii.gz "$WORK"/val/patient900/Info.cfg "$data/labels/.a_validation/"
    mv "$data/labels/.a_validation" "$data/labels/a_validation"; touch "$data/labels/a_validation/.ready"
    for n in "$@"; do
      mkdir "$data/labels/.b_$n"; cp "$WORK/pool/$n"/*frame??*.nii.gz "$WORK/pool/$n"/Info.cfg "$data/labels/.b_$n/"
      mv "$data/labels/.b_$n" "$data/labels/b_$n"; touch "$data/labels/b_$n/.ready"
    done
    until sqlite3 "$data/journal.sqlite" "SELECT candidate_version FROM refits WHERE outcome IS NOT NULL" 2>/dev/null | grep -q v; do
      kill -0 "$pid" || { echo "the daemon of $name exited"; cat "$data.log"; exit 1; }
      sleep 2
    done
    echo "$name: refit in $(( $(date +%s) - start )) s: $(sqlite3 "$data/journal.sqlite" "SELECT outcome, detail FROM refits")"
    kill -TERM "$pid"; wait "$pid" || true
    sqlite3 "$data/journal.sqlite" "SELECT candidate_version FROM refits WHERE outcome IS NOT NULL" > "$WORK/version_$name"
  fi
  evaluate "$name" "$data/models/$(cat "$WORK/version_$name")"
}

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
evaluate embedded embedded
arm suggested $(cat "$WORK/suggested.txt")
for s in $(seq 1 "$RANDOM_DRAWS"); do
  arm "random$s" $(ls "$WORK/pool" | grep '^patient' | python3 -c "import random, sys; r = random.Random($s); print(' '.join(sorted(r.sample(sys.stdin.read().split(), 5))))")
done
