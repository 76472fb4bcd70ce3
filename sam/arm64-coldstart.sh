#!/usr/bin/env bash
# Start-to-first-poll of the arm64 Lambda artifacts `make sam` builds (sam/.state/build), on an
# x86_64 machine: each `bootstrap` runs under qemu-user emulation, spawned by
# `lambda-bench coldstart` exactly as the x86_64 binaries are. Emulation makes the figures an
# upper bound, far slower than a Graviton core; the x86_64 binaries are timed beside them.
#
#   sam/arm64-coldstart.sh [RUNS]      # after `make sam`; RUNS per function, default 30
#   ARTIFACTS=DIR sam/arm64-coldstart.sh   # the `bootstrap` files under DIR/*/ instead
#
# Needs qemu-user and the arm64 C library (apt-get install qemu-user libc6-arm64-cross).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
runs="${1:-30}"
artifacts="${ARTIFACTS:-$here/.state/build}"
command -v qemu-aarch64 > /dev/null || {
  echo "qemu-aarch64 is missing: apt-get install qemu-user libc6-arm64-cross" >&2
  exit 1
}
[[ -d /usr/aarch64-linux-gnu/lib ]] || {
  echo "the arm64 C library is missing: apt-get install libc6-arm64-cross" >&2
  exit 1
}
ls "$artifacts"/*/bootstrap > /dev/null 2>&1 || {
  echo "no arm64 artifacts in $artifacts: run make sam first" >&2
  exit 1
}
cd "$root"
cargo build --release --locked -p taogate-testkit -p taogate-submit -p taogate-status -p taogate-worker
wrappers="$(mktemp -d)"
trap 'rm -rf "$wrappers"' EXIT
for artifact in "$artifacts"/*/bootstrap; do
  name="$(basename "$(dirname "$artifact")")"
  printf '#!/bin/sh\nexec qemu-aarch64 -L /usr/aarch64-linux-gnu %q "$@"\n' "$artifact" > "$wrappers/$name"
  chmod +x "$wrappers/$name"
  printf '%s (arm64, %d bytes, under qemu-user): ' "$name" "$(stat -c %s "$artifact")"
  ./target/release/lambda-bench coldstart "$wrappers/$name" "$runs"
done
for f in submit status worker; do
  printf '%s (x86_64, %d bytes, native): ' "$f" "$(stat -c %s "target/release/$f")"
  ./target/release/lambda-bench coldstart "target/release/$f" "$runs"
done
