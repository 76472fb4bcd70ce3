"""Verifies captured callback deliveries with the official `standardwebhooks` package.

Reads JSON lines `{"secret": "whsec_...", "headers": {...}, "body_b64": "..."}` on stdin and
prints one line per delivery: `ok <webhook-id>` or `refused <reason>`.
"""

import base64
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

for line in sys.stdin:
    if not line.strip():
        continue
    delivery = json.loads(line)
    body = base64.b64decode(delivery["body_b64"])
    try:
        payload = Webhook(delivery["secret"]).verify(body, delivery["headers"])
        print("ok", delivery["headers"]["webhook-id"], payload.get("task_id"))
    except WebhookVerificationError as e:
        print("refused", str(e).replace("\n", " "))
    sys.stdout.flush()
