#!/usr/bin/env bash
# Fuzzes each named harness for SECONDS with libFuzzer, from a working corpus seeded by the
# committed one (Fuzz/corpus/<harness>; new interesting inputs stay in .fuzz/<harness>/corpus,
# out of git). A crash, timeout or out-of-memory input is saved in .fuzz/<harness>/ and the run
# fails; libFuzzer stops at its first finding, so the seconds shown are those it really ran.
# Limits: 10 s per input, 2 GiB of RSS, 1 GiB per allocation.
# Usage: scripts/fuzz/run.sh BIN SECONDS HARNESS...
# With FUZZ_RUNS=N in the environment each harness instead runs N inputs from a fixed seed
# (-seed=1): the same inputs on every machine, which is what CI does.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=$1 SECONDS_EACH=$2
shift 2
status=0
for h in "$@"; do
  work=.fuzz/$h
  mkdir -p "$work/corpus"
  touch "$work/.start"
  started=$(date +%s)
  if [ -n "${FUZZ_RUNS:-}" ]; then budget=(-runs="$FUZZ_RUNS" -seed=1); else budget=(-max_total_time="$SECONDS_EACH"); fi
  ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=0 "$BIN" "$h" "$work/corpus" "Fuzz/corpus/$h" \
    "${budget[@]}" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 \
    -artifact_prefix="$work/" -print_final_stats=1 > "$work/log.txt" 2>&1
  rc=$?
  elapsed=$(( $(date +%s) - started ))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log.txt" | tail -1)
  found=$(find "$work" -maxdepth 1 -newer "$work/.start" -regextype egrep -regex '.*/(crash|timeout|oom|leak|slow-unit)-.*' | wc -l)
  printf '%-16s %4s s  %10s runs  %d new finding(s)  exit %d\n' "$h" "$elapsed" "${runs:-?}" "$found" "$rc"
  if [ "$rc" -ne 0 ]; then status=1; tail -30 "$work/log.txt"; fi
done
exit $status
