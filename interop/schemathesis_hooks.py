"""Hooks for the schemathesis run against taogate (cli/tests/suite/schema.rs).

Every generated case is a new request, so each carries its own Idempotency-Key: a key reused
with another body is rightly refused (422), which is not what the run is probing.
"""

import uuid

import schemathesis


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = f"st-{uuid.uuid4()}"
