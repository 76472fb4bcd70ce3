#!/usr/bin/env bash
# Installs the real Python peers used by the interoperability tests, each in its own pinned
# virtual environment under interop/.state (git-ignored):
#   venv-bt10  bittensor 10.5.0: Axon and Dendrite
#   venv-bt11  bittensor 11.3.0: http_auth (btauth/1)
#   venv-webhooks  standardwebhooks 1.1.0: verifies signed callbacks
#   venv-openai  openai 3.57.0 (and its dependencies, pinned): the OpenAI-compatible routes
#   venv-schemathesis  schemathesis 4.32.5 (pinned with its dependencies): the OpenAPI document
# Idempotent: an environment is rebuilt only when its requirements file changes. PyPI only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
state="$here/.state"
python="${PYTHON:-python3}"
mkdir -p "$state"

for name in bt10 bt11 webhooks openai schemathesis; do
  dir="$state/venv-$name"
  req="$here/requirements-$name.txt"
  stamp="$(sha256sum "$req" | cut -d' ' -f1)"
  if [[ ! -f "$dir/.stamp" || "$(cat "$dir/.stamp")" != "$stamp" ]]; then
    echo "installing $name environment from $(basename "$req")" >&2
    rm -rf "$dir"
    "$python" -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
    echo "$stamp" > "$dir/.stamp"
  fi
done
