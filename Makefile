# taogate's everyday commands. `make test` is what CI runs (.ci/run).

CARGO ?= cargo

.PHONY: serve test check fast fmt lint template unit sam bench bench-e2e bench-lambda bench-arm64 local-aws interop clean

## Run the gateway locally: API on 127.0.0.1:8000, embedded backend, simulated subnet.
serve:
	$(CARGO) run --profile serve -p taogate-cli -- serve

## Every check and test. Starts local AWS (LocalStack + moto) if it is not running.
test: fmt lint template unit sam

## The inner loop: fmt, clippy, and every test that needs neither the AWS emulators nor the
## Python peers (the core, the use cases, the embedded backend, the HTTP API through a real
## `taogate serve`, fuzz and scoring). Nothing to start; `make test` stays the full run.
check: fmt lint fast

# What `fast` leaves to `make test`: the Lambda crates and the testkit (their tests run the
# binaries against LocalStack), tests against the emulators (named `aws` or `…_on_aws`), and
# those against the Python bittensor, openai, schemathesis and standardwebhooks packages.
FAST_EXCLUDE = --exclude taogate-submit --exclude taogate-status --exclude taogate-worker \
	--exclude taogate-sweeper --exclude taogate-metagraph-sync --exclude taogate-testkit
FAST_SKIP = --skip aws --skip interop:: --skip openai:: --skip schema:: --skip python_axons \
	--skip standardwebhooks

fast:
	$(CARGO) test --workspace --locked $(FAST_EXCLUDE) -- $(FAST_SKIP)

fmt:
	$(CARGO) fmt --all --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Local AWS emulators for the AWS adapter tests (idempotent).
local-aws:
	localstack/local-aws.sh start > /dev/null

## Real Python bittensor peers for the interoperability tests (pinned venvs, idempotent).
interop:
	interop/setup.sh

## The deployable stack: `sam build` (arm64, cargo-lambda) and `sam validate --lint`, as a
## deploy builds it. Pinned SAM CLI and cargo-lambda from PyPI (idempotent); about 12 minutes.
sam:
	sam/build.sh

template: local-aws
	localstack/.state/venv-moto/bin/cfn-lint template.yaml

unit: local-aws interop
	eval "$$(localstack/local-aws.sh env)" && $(CARGO) test --workspace --locked

## Submit throughput and latency of the local server (serve build, bounded: 10 s).
bench:
	$(CARGO) run --profile serve -p taogate-cli -- bench submit --connections 64 --seconds 10

## The gateway's overhead end to end against simulated miners that answer at once: submit to
## callback, last answer to stored result, tasks/s (serve build, bounded: about 40 s).
bench-e2e:
	$(CARGO) run --profile serve -p taogate-cli -- bench e2e

## Start-to-first-poll of the arm64 artifacts of `make sam`, under qemu-user emulation.
bench-arm64:
	sam/arm64-coldstart.sh 30

## Lambda binaries: stripped sizes, start-to-first-poll, worker peak memory on 50 MiB x 5 miners,
## under hostile miners (flooding, and the hostile mix), and the AWS cost of a task per service.
bench-lambda: local-aws
	$(CARGO) build --release -p taogate-submit -p taogate-status -p taogate-worker -p taogate-testkit
	ls -l target/release/submit target/release/status target/release/worker
	for f in submit status worker; do ./target/release/lambda-bench coldstart target/release/$$f 30; done
	eval "$$(localstack/local-aws.sh env)" && ./target/release/lambda-bench worker-memory target/release/worker 50 5
	eval "$$(localstack/local-aws.sh env)" && ./target/release/lambda-bench worker-hostile target/release/worker 5 7
	eval "$$(localstack/local-aws.sh env)" && ./target/release/lambda-bench worker-mix target/release/worker 5
	eval "$$(localstack/local-aws.sh env)" && ./target/release/lambda-bench cost target/release 20 0
	eval "$$(localstack/local-aws.sh env)" && ./target/release/lambda-bench cost target/release 10 1000

clean:
	$(CARGO) clean
