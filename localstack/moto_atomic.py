"""moto's server, with DynamoDB's atomic writes.

moto's DynamoDB models take no locks, and its server handles requests on threads, so two
concurrent conditional writes to one item can both pass their condition before either applies.
DynamoDB applies writes to an item one at a time, which is what conditional counters (rates,
quotas, idempotency claims) rely on. Here every call into the DynamoDB backend holds one lock,
so the emulator keeps that promise; everything else is moto's own server, unchanged.

Usage: python moto_atomic.py -H HOST -p PORT (moto_server's arguments).
"""

import functools
import inspect
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend

_lock = threading.RLock()


def _atomic(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)

    return locked


for _name, _member in list(vars(DynamoDBBackend).items()):
    if not _name.startswith("_") and inspect.isfunction(_member):
        setattr(DynamoDBBackend, _name, _atomic(_member))

from moto.server import main  # noqa: E402  (after the backend is patched)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
