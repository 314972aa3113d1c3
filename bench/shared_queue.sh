#!/usr/bin/env bash
# Issue 22's number: studies per hour of N single-threaded workers sharing one PostgreSQL queue
# against one, on the same STUDIES phantom studies (ACDC folders, the demo encoder and the
# embedded head), each run on a fresh data folder and a fresh database. PostgreSQL is Debian's,
# started in WORKDIR as an unprivileged user on a Unix socket. A run's time is from the drop
# into the inbox (all studies at once, with their markers) to the last study done, as the
# journal records it (first claim to last finish).
# Usage: AUTOSAM=.build/release/autosam bash bench/shared_queue.sh [WORKDIR] [STUDIES] [WORKERS...]
#   (defaults: a temporary folder, 20 studies, worker counts 1 2)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${AUTOSAM:-.build/release/autosam}")
WORK=$(realpath -m "${1:-$(mktemp -d)}")
N=${2:-20}
shift $(( $# > 2 ? 2 : $# ))
COUNTS=("${@:-1}")
[ $# -eq 0 ] && COUNTS=(1 2)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$PGBIN/pg_ctl" ] || { echo "needs PostgreSQL (Debian package postgresql)"; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$WORK"
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
"$BIN" phantom --out "$WORK/ph" --patients "$N" --seed 31 --no-cine > /dev/null
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; AUTOSAM_THREADS=1 per worker"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}"
for W in "${COUNTS[@]}"; do
    as_pg "$PGBIN/pg_ctl" -D "$WORK/db" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK/db" "$WORK/data"
    as_pg "$PGBIN/initdb" -D "$WORK/db" -A trust -U autosam --no-sync > /dev/null
    as_pg "$PGBIN/pg_ctl" -D "$WORK/db" -l "$WORK/pg.log" -w start -o "-k $WORK -c listen_addresses=''" > /dev/null
    as_pg "$PGBIN/psql" -h "$WORK" -U autosam -d postgres -q -c "CREATE DATABASE autosam"
    cat > "$WORK/autosam.toml" <<TOML
[paths]
data = "$WORK/data"
[inbox]
quiet_period_s = 600
poll_interval_s = 0.2
[refit]
enabled = false
[queue]
backend = "postgres"
host = "$WORK"
TOML
    pids=()
    for i in $(seq 1 "$W"); do
        AUTOSAM_THREADS=1 "$BIN" watch --config "$WORK/autosam.toml" > "$WORK/worker$i.log" 2>&1 &
        pids+=($!)
    done
    until [ -d "$WORK/data/inbox" ] && "$BIN" status --config "$WORK/autosam.toml" 2>/dev/null | grep -q "$W worker(s)"; do sleep 0.5; done
    for p in "$WORK"/ph/patient*; do
        cp -r "$p" "$WORK/data/inbox/.$(basename "$p")"
        touch "$WORK/data/inbox/.$(basename "$p")/.ready"
        mv "$WORK/data/inbox/.$(basename "$p")" "$WORK/data/inbox/$(basename "$p")"
    done
    until "$BIN" status --config "$WORK/autosam.toml" | grep -q "studies: $N done"; do sleep 1; done
    span=$(as_pg "$PGBIN/psql" -h "$WORK" -U autosam -d autosam -At -c "SELECT MAX(finished_at) - MIN(claimed_at) FROM studies")
    kill -TERM "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
    awk -v w="$W" -v n="$N" -v s="$span" 'BEGIN { printf "%d worker(s): %d studies in %.1f s = %.0f studies/hour\n", w, n, s, n * 3600 / s }'
done
as_pg "$PGBIN/pg_ctl" -D "$WORK/db" -m fast stop > /dev/null
