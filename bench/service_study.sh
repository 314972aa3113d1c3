#!/usr/bin/env bash
# End-to-end service time of an ED + ES study of 2 x 10 slices on one encoder. Runs the real
# daemon (`autosam watch`) on ENCODER (a checkpoint path or "litemedsam") and a linear head
# fitted on it for one epoch (the head's weights do not change the time), drops one ACDC-layout
# phantom study with 10 slices and a `.ready` marker (no quiet period), and reports the wall
# time from the drop until the study is done, plus the pipeline's own timings from
# provenance.json. bench/service_vit_b.sh and bench/service_litemedsam.sh call it.
# Usage: AUTOSAM=.build/release/autosam bash bench/service_study.sh ENCODER [fp32|bf16] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${AUTOSAM:-.build/release/autosam}")
CKPT=${1:?usage: bench/service_study.sh ENCODER [fp32|bf16] [WORKDIR]}
PRECISION=${2:-fp32}
WORK=$(realpath -m "${3:-$(mktemp -d)}")
mkdir -p "$WORK"
# Phantoms until one has exactly 10 slices.
if [ ! -d "$WORK/ph" ]; then "$BIN" phantom --out "$WORK/ph" --patients 12 --seed 11 > "$WORK/phantoms.txt"; fi
study=$(awk '$3 ~ /x10$/ { print $1; exit }' "$WORK/phantoms.txt")
[ -n "$study" ] || { echo "no 10-slice phantom among:"; cat "$WORK/phantoms.txt"; exit 1; }
other=$(awk -v s="$study" '$1 ~ /^patient/ && $1 != s { print $1; exit }' "$WORK/phantoms.txt")
echo "study: $study (10 slices); head fitted on $other"
if [ ! -f "$WORK/head/model.json" ]; then
  "$BIN" fit --data "$WORK/ph" --train "$other" --head linear --encoder "$CKPT" --epochs 1 --no-augment \
    --cache "$WORK/fitcache" --out "$WORK/head" > "$WORK/fit.log"
fi
rm -rf "$WORK/data"
cat > "$WORK/autosam.toml" <<TOML
[paths]
data = "$WORK/data"
[model]
encoder = "$CKPT"
head = "$WORK/head"
precision = "$PRECISION"
[inbox]
quiet_period_s = 600
poll_interval_s = 0.2
[refit]
enabled = false
TOML
"$BIN" watch --config "$WORK/autosam.toml" > "$WORK/daemon.log" 2>&1 & pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
ready=0
for i in $(seq 1 600); do grep -q "ready" "$WORK/daemon.log" 2>/dev/null && { ready=1; break; }; sleep 0.5; done
[ $ready = 1 ] || { echo "the daemon did not become ready in 300 s:"; cat "$WORK/daemon.log"; exit 1; }
inbox="$WORK/data/inbox"
mkdir "$inbox/.s" && cp "$WORK/ph/$study"/* "$inbox/.s/" && mv "$inbox/.s" "$inbox/$study"
start=$(date +%s.%N)
touch "$inbox/$study/.ready"
# Poll the file system (cheap), not `autosam status` (a process start every poll).
while [ ! -f "$WORK/data/outbox/$study/provenance.json" ] && [ ! -d "$WORK/data/failed/$study" ]; do
  kill -0 $pid 2>/dev/null || { echo "the daemon exited:"; cat "$WORK/daemon.log"; exit 1; }
  sleep 0.1
done
end=$(date +%s.%N)
kill -TERM $pid; wait $pid || true; trap - EXIT
[ ! -d "$WORK/data/failed/$study" ] || { echo "the study failed:"; cat "$WORK/data/failed/$study/reason.txt"; exit 1; }
echo "precision $PRECISION: marker to done $(echo "$end - $start" | bc) s (load $(cut -d' ' -f1-3 /proc/loadavg))"
grep -A8 '"timings"' "$WORK/data/outbox/$study/provenance.json"
