#!/usr/bin/env bash
# The review page under load while the daemon segments (issue 23's number): a data folder with
# 1,000 done studies (2 segmented for real, 998 more journal rows copying their outputs' stats),
# `autosam web` on it, and wrk fetching the studies list (all 1,000 rows on one page) with a
# logged-in session: latency percentiles with the daemon idle, then while the daemon segments
# STUDIES phantom studies under a paced load and under wrk flat out; the daemon's time for the
# same number of studies with and without the page under load is the "throughput unchanged"
# check.
# Usage: AUTOSAM=.build/release/autosam [WEB_NICE=10] [PACE_MS=100] bash bench/review_page.sh [WORKDIR] [STUDIES] [WRK_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${AUTOSAM:-.build/release/autosam}")
WORK=$(realpath -m "${1:-$(mktemp -d)}")
N=${2:-6}
SECONDS_WRK=${3:-20}
PORT=${PORT:-18391}
command -v wrk >/dev/null && command -v sqlite3 >/dev/null || { echo "needs wrk and sqlite3 (Debian packages wrk, sqlite3)"; exit 1; }
mkdir -p "$WORK"
rm -rf "$WORK/data" "$WORK/ph"
"$BIN" phantom --out "$WORK/ph" --patients $((3 * N + 2)) --seed 21 --no-cine > /dev/null
cat > "$WORK/autosam.toml" <<TOML
[paths]
data = "$WORK/data"
[inbox]
quiet_period_s = 600
poll_interval_s = 0.2
[refit]
enabled = false
[web]
listen = "127.0.0.1:$PORT"
TOML
"$BIN" watch --config "$WORK/autosam.toml" > "$WORK/daemon.log" 2>&1 & daemon=$!
web=""
trap 'kill $daemon $web 2>/dev/null || true' EXIT
for i in $(seq 1 600); do grep -q "ready" "$WORK/daemon.log" 2>/dev/null && break; sleep 0.5; done
inbox="$WORK/data/inbox"
drop() {  # drop patients $1..$2 with .ready markers, wait until all are done; print seconds
  local start end p
  start=$(date +%s.%N)
  for n in $(seq "$1" "$2"); do
    p=$(printf "patient%03d" "$n")
    mkdir "$inbox/.$p" && cp "$WORK/ph/$p"/* "$inbox/.$p/" && mv "$inbox/.$p" "$inbox/$p" && touch "$inbox/$p/.ready"
  done
  for n in $(seq "$1" "$2"); do
    p=$(printf "patient%03d" "$n")
    while [ ! -f "$WORK/data/outbox/$p/provenance.json" ]; do
      kill -0 $daemon 2>/dev/null || { echo "the daemon exited:"; cat "$WORK/daemon.log"; exit 1; }
      sleep 0.1
    done
  done
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
drop 1 2 > /dev/null
# 998 more done studies: journal rows like the first, outputs folders with its stats.json.
sqlite3 "$WORK/data/journal.sqlite" <<SQL
WITH RECURSIVE n(i) AS (SELECT 3 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
INSERT INTO studies (name, kind, state, attempts, write_failures, claimed_at, started_at, finished_at, work_path, output_name, model_version, seconds)
SELECT 'bench' || i, kind, 'done', attempts, write_failures, claimed_at, started_at, finished_at + i, work_path, 'bench' || i, model_version, seconds
FROM studies, n WHERE studies.id = 1;
SQL
for i in $(seq 3 1000); do mkdir -p "$WORK/data/outbox/bench$i"; cp "$WORK/data/outbox/patient001/stats.json" "$WORK/data/outbox/bench$i/"; done
printf 'bench password 1\n' | "$BIN" web-user --config "$WORK/autosam.toml" bench > /dev/null
nice -n "${WEB_NICE:-0}" "$BIN" web --config "$WORK/autosam.toml" > "$WORK/web.log" 2>&1 & web=$!
for i in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/login" && break; sleep 0.2; done
cookie=$(curl -s -i -H "Origin: http://127.0.0.1:$PORT" -d "user=bench&password=bench+password+1" "http://127.0.0.1:$PORT/login" \
  | tr -d '\r' | awk -F'[:;] *' 'tolower($1) == "set-cookie" { print $2; exit }')
rows=$(curl -s -H "Cookie: $cookie" "http://127.0.0.1:$PORT/studies" | grep -c '<tr class="done">' || true)
bytes=$(curl -s -H "Cookie: $cookie" "http://127.0.0.1:$PORT/studies" | wc -c)
echo "studies page: $rows rows, $bytes bytes; CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
echo "== wrk, daemon idle (1 thread, 2 connections, ${SECONDS_WRK} s) =="
wrk -t1 -c2 -d"${SECONDS_WRK}s" --latency -H "Cookie: $cookie" "http://127.0.0.1:$PORT/studies" | sed -n '/Latency Distribution/,/Requests\/sec/p'
echo "== the daemon alone: $N studies =="
alone=$(drop 3 $((N + 2)))
echo "daemon alone: $alone s for $N studies"
# A paced load (each connection waits PACE_MS between requests: about what many people
# browsing at once ask of a review page), then wrk flat out (the worst case: wrk itself then
# takes a core from the daemon on this 2-core machine).
PACE_MS=${PACE_MS:-100}
echo "function delay() return $PACE_MS end" > "$WORK/pace.lua"
busy() {  # busy LABEL FIRST LAST WRK_ARGS...
  local label=$1 first=$2 last=$3; shift 3
  wrk -t1 -c2 -d"$(( SECONDS_WRK * 4 ))s" --latency "$@" -H "Cookie: $cookie" "http://127.0.0.1:$PORT/studies" > "$WORK/wrk-$label.txt" & local w=$!
  sleep 1
  local t; t=$(drop "$first" "$last")
  kill -INT $w 2>/dev/null || true; wait $w || true
  echo "== the daemon with $label load on the page: $t s for $N studies (alone: $alone s) =="
  sed -n '/Latency Distribution/,/Requests\/sec/p' "$WORK/wrk-$label.txt"
}
busy "paced (${PACE_MS} ms between requests)" $((N + 3)) $((2 * N + 2)) -s "$WORK/pace.lua"
busy "flat-out" $((2 * N + 3)) $((3 * N + 2))
