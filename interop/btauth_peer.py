"""A miner endpoint guarded by `bittensor.http_auth.verify` (bittensor 11.3.0, `btauth/1`).

    python btauth_peer.py --port 18092 --hotkey-ss58 5FHn... [--path /audio]

Every request is verified with the SDK's reference verifier before anything else. A verified
`POST <path>` carrying the AudioTask fields as JSON gets the answer fields back as JSON (200).
A refused request gets 401 with `{"error": <the SDK's AuthError class>, "message": ...}`.
Prints `READY <port>` once listening on loopback; stops when stdin closes.
"""

import argparse
import base64
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bittensor import http_auth


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hotkey-ss58", required=True)
    parser.add_argument("--path", default="/AudioTask")
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", "0")))
            try:
                caller = http_auth.verify(
                    dict(self.headers.items()),
                    raw,
                    method="POST",
                    path=self.path,
                    self_hotkey_ss58=args.hotkey_ss58,
                )
            except http_auth.AuthError as e:
                self.reply(401, {"error": type(e).__name__, "message": str(e)})
                return
            if self.path.split("?")[0] != args.path:
                self.reply(404, {"message": f"no route {self.path}"})
                return
            task = json.loads(raw)
            if task["task_type"] == "transcription":
                output = b"hello from a btauth miner"
            else:
                output = base64.b64decode(task["input_data"])[:64]
            self.reply(
                200,
                {
                    "task_type": task["task_type"],
                    "language": task.get("language", "en"),
                    "output_data": base64.b64encode(output).decode(),
                    "pipeline_model": "btauth-peer",
                    "caller": caller.hotkey_ss58,
                },
            )

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"READY {args.port}", flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
