#!/usr/bin/env bash
# Regenerates the TTS fixture in this folder (Debian: espeak-ng sox): real speech of
# tts.txt, 16 kHz mono 16-bit WAV. The faulty variants (silent, clipped, truncated,
# wrong length, DC offset, not audio) are derived from it by the scoring tests.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
espeak-ng -v en -s 165 -w "$tmp/raw.wav" -f tts.txt
sox "$tmp/raw.wav" -r 16000 -c 1 -b 16 tts_good.wav
rm -rf "$tmp"
