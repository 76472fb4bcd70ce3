#!/usr/bin/env bash
# Builds the deployable stack exactly as `sam build` does for a deploy (BuildMethod
# rust-cargolambda: arm64 `bootstrap` binaries), then validates and lints the template.
#
#   sam/build.sh          # install if needed, build, validate; prints sizes and time
#
# Idempotent: the pinned Python environment is reused while sam/requirements.txt is unchanged.
# Only package registries (PyPI) and the Rust toolchain's own component servers are used.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
state="$here/.state"
python="${PYTHON:-python3}"
mkdir -p "$state"

stamp="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ ! -f "$state/venv/.stamp" || "$(cat "$state/venv/.stamp")" != "$stamp" ]]; then
  echo "installing SAM CLI and cargo-lambda from requirements.txt" >&2
  rm -rf "$state/venv"
  "$python" -m venv "$state/venv"
  "$state/venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$stamp" > "$state/venv/.stamp"
fi
export PATH="$state/venv/bin:$PATH"
# The functions run on arm64 (template: Architectures [arm64]).
rustup target add aarch64-unknown-linux-gnu >/dev/null

# SAM reads a region and credentials even for local commands; nothing here calls AWS.
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export SAM_CLI_TELEMETRY=0

# SAM copies a function's CodeUri (here the whole workspace) before building it: build from a
# copy of the project's own files only, never its target/ or installed environments.
rm -rf "$state/src"
mkdir -p "$state/src"
(cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - --) | tar -xf - -C "$state/src"
# One function at a time: cargo-lambda runs that share a target directory race each other
# ("File exists"), and serial builds reuse the dependencies anyway.
sed -i -e '/^parallel = /d' -e '/^cached = /d' "$state/src/samconfig.toml"
# One Cargo target directory across runs and functions: dependencies are built once.
export CARGO_TARGET_DIR="$state/target"
cd "$state/src"
started=$(date +%s)
sam build --beta-features --build-dir "$state/build" --cache-dir "$state/cache"
finished=$(date +%s)
sam validate --lint
echo "sam build took $((finished - started)) s; arm64 bootstrap sizes:"
for f in "$state"/build/*/bootstrap; do
  printf '  %-28s %10d bytes\n' "$(basename "$(dirname "$f")")" "$(stat -c %s "$f")"
done
