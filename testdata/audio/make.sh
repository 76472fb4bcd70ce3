#!/usr/bin/env bash
# Regenerates the speech fixtures in this folder (Debian: espeak-ng sox flac vorbis-tools lame).
# The comment tag of each encoded file holds the spoken transcript, which the miner simulator
# returns as the "correct" transcription.
set -euo pipefail
cd "$(dirname "$0")"
text="the quick brown fox jumps over the lazy dog"
tmp=$(mktemp -d)
espeak-ng -v en -s 170 -w "$tmp/raw.wav" "$text"
sox "$tmp/raw.wav" -r 16000 -c 1 speech.wav
flac -s -f --tag="COMMENT=$text" -o speech.flac speech.wav
oggenc -Q -c "COMMENT=$text" -o speech.ogg speech.wav
lame --quiet --tc "$text" -b 32 speech.wav speech.mp3
rm -rf "$tmp"
