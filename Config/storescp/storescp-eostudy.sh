#!/bin/sh
# Run by DCMTK's storescp at the end of each study (--exec-on-eostudy "... #p INBOX"):
# moves the finished study folder into the autosam inbox in one step, so the inbox never
# shows a half-received study.
#
#   storescp-eostudy.sh STUDY_FOLDER INBOX
#
# STUDY_FOLDER is storescp's per-study folder (--sort-on-study-uid PREFIX gives
# PREFIX_<StudyInstanceUID>). On the inbox's file system the move is a rename (atomic);
# across file systems the folder is first copied under a hidden name in the inbox, then
# renamed. A second delivery of the same study gets a time-stamped name beside the first.
set -eu

study=${1:?study folder}
inbox=${2:?inbox folder}
[ -d "$study" ] || exit 0
mkdir -p "$inbox"
name=$(basename "$study")
dest="$inbox/$name"
if [ -e "$dest" ]; then
    dest="$inbox/$name.$(date +%Y%m%dT%H%M%S).$$"
fi
if [ "$(stat -c %d "$study")" = "$(stat -c %d "$inbox")" ]; then
    mv -T "$study" "$dest"
else
    tmp="$inbox/.incoming-$name.$$"
    cp -R "$study" "$tmp"
    sync "$tmp" 2>/dev/null || sync
    mv -T "$tmp" "$dest"
    rm -rf "$study"
fi
logger -t autosam-storescp "study folder ready: $(basename "$dest")" 2>/dev/null || true
