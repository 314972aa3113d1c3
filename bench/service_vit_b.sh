#!/usr/bin/env bash
# End-to-end service throughput with a vit_b-sized encoder (issue 6: an ED + ES study of
# 2 x 10 slices in under 60 s on 2 cores), on a random-weight vit_b checkpoint made once by
# scripts/fixtures/vit_b_parity.py into /tmp/vitb (needs /usr/bin/python3 with python3-torch and
# segment_anything). See bench/service_study.sh.
# Usage: AUTOSAM=.build/release/autosam bash bench/service_vit_b.sh [fp32|bf16] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=/tmp/vitb/vit_b_random.pth
[ -f "$CKPT" ] || /usr/bin/python3 scripts/fixtures/vit_b_parity.py --out /tmp/vitb --seed 0
exec bash bench/service_study.sh "$CKPT" "$@"
