#!/usr/bin/env bash
# End-to-end service time on the LiteMedSAM encoder (issue 20: an ED + ES study of 2 x 10 slices
# in at most 12 s on 2 cores), with the weights scripts/fetch_weights.sh fetched. See
# bench/service_study.sh.
# Usage: AUTOSAM=.build/release/autosam bash bench/service_litemedsam.sh [fp32|bf16] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash bench/service_study.sh litemedsam "$@"
