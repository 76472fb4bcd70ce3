#!/usr/bin/env bash
# Local AWS for machines without Docker (CI included): LocalStack in host mode for S3 and SQS,
# moto server for DynamoDB, each from a pinned Python environment, started in the background.
#
#   localstack/local-aws.sh start   # install if needed, start, wait until healthy, create resources
#   localstack/local-aws.sh env     # print the environment to export (eval "$(… env)")
#   localstack/local-aws.sh stop    # stop both servers
#
# Idempotent: a second `start` reuses the environments and the running servers. Only package
# registries are used. State lives under localstack/.state (git-ignored).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
state="$here/.state"
ls_port="${TAOGATE_LOCALSTACK_PORT:-4566}"
moto_port="${TAOGATE_MOTO_PORT:-4569}"
python="${PYTHON:-python3}"
mkdir -p "$state"

venv() { # venv NAME REQUIREMENTS
  local dir="$state/venv-$1" req="$2" stamp
  stamp="$(sha256sum "$req" | cut -d' ' -f1)"
  if [[ ! -f "$dir/.stamp" || "$(cat "$dir/.stamp")" != "$stamp" ]]; then
    echo "installing $1 environment from $(basename "$req")" >&2
    rm -rf "$dir"
    "$python" -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
    echo "$stamp" > "$dir/.stamp"
  fi
}

alive() { [[ -f "$state/$1.pid" ]] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

healthy() { curl -fsS -o /dev/null "$1" 2>/dev/null; }

wait_for() { # wait_for NAME URL
  for _ in $(seq 1 120); do
    if curl -fsS -o /dev/null "$2" 2>/dev/null; then return 0; fi
    sleep 0.5
  done
  echo "$1 did not become healthy; its log:" >&2
  tail -n 40 "$state/$1.log" >&2
  return 1
}

common_env() {
  cat <<ENV
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://[::1]:$ls_port
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$moto_port
export AWS_S3_FORCE_PATH_STYLE=true
ENV
}

start() {
  venv localstack "$here/requirements-localstack.txt"
  venv moto "$here/requirements-moto.txt"
  if ! alive localstack && ! healthy "http://[::1]:$ls_port/_localstack/health"; then
    mkdir -p "$state/run" "$state/volume"
    # Run from a folder without a `localstack` directory, which would shadow the package.
    # LocalStack's gateway ignores the host of an IPv4 listen address and binds every interface;
    # it honours an IPv6 one, so it listens on [::1], loopback only.
    (
      cd "$state/run" || exit 1
      GATEWAY_LISTEN="[::1]:$ls_port" SERVICES=s3,sqs DNS_ADDRESS=0 SQS_ENDPOINT_STRATEGY=path \
        LOCALSTACK_HOST="[::1]:$ls_port" LOCALSTACK_VOLUME_DIR="$state/volume" \
        DISABLE_EVENTS=1 S3_SKIP_SIGNATURE_VALIDATION=0 \
        nohup "$state/venv-localstack/bin/python" -m localstack.runtime.main \
        < /dev/null > "$state/localstack.log" 2>&1 &
      echo $! > "$state/localstack.pid"
    )
  fi
  if ! alive moto && ! healthy "http://127.0.0.1:$moto_port/moto-api/"; then
    (
      cd "$state" || exit 1
      # moto_atomic.py: moto's server with DynamoDB's one-write-at-a-time per item.
      nohup "$state/venv-moto/bin/python" "$here/moto_atomic.py" -H 127.0.0.1 -p "$moto_port" \
        < /dev/null > "$state/moto.log" 2>&1 &
      echo $! > "$state/moto.pid"
    )
  fi
  wait_for localstack "http://[::1]:$ls_port/_localstack/health"
  wait_for moto "http://127.0.0.1:$moto_port/moto-api/"
  eval "$(common_env)"
  "$state/venv-moto/bin/python" "$here/resources.py" > "$state/resources.env"
  echo "local AWS is up: LocalStack (S3, SQS) on :$ls_port, moto (DynamoDB) on :$moto_port" >&2
}

stop() {
  for name in localstack moto; do
    if alive "$name"; then kill "$(cat "$state/$name.pid")" 2>/dev/null || true; fi
    rm -f "$state/$name.pid"
  done
}

case "${1:-}" in
  start) start; common_env; cat "$state/resources.env" ;;
  env) common_env; cat "$state/resources.env" ;;
  stop) stop ;;
  *) echo "usage: $0 start|env|stop" >&2; exit 2 ;;
esac
