"""A real `bittensor.Dendrite` (10.5.0) sending `AudioTask` requests, to check that an axon
answers each fault the way a Python axon does.

Reads a JSON list of calls on stdin, each
    {"label", "caller_uri", "ip", "port", "hotkey", "task_type", "text", "synapse"?}
and prints one JSON object per call:
    {"label", "status_code", "status_message", "error_message", "output_bytes"}
`synapse` defaults to "AudioTask"; any other name sends an otherwise identical synapse class of
that name (a protocol mismatch).
"""

import asyncio
import base64
import json
import sys
import tempfile

import bittensor.utils.networking as networking

# The dendrite looks its public IP up on the internet when it is built; there is none here.
networking.get_external_ip = lambda: "127.0.0.1"

import bittensor as bt  # noqa: E402

from audio_task import AudioTask, wallet_from_uri  # noqa: E402


def synapse_class(name: str) -> type:
    if name == "AudioTask":
        return AudioTask
    return type(name, (AudioTask,), {})


async def call(root: str, item: dict) -> dict:
    wallet = wallet_from_uri(root, item["label"].replace(" ", "_"), item["caller_uri"])
    axon = bt.AxonInfo(
        version=10005000,
        ip=item["ip"],
        port=item["port"],
        ip_type=4,
        hotkey=item["hotkey"],
        coldkey=item["hotkey"],
    )
    cls = synapse_class(item.get("synapse", "AudioTask"))
    text = item.get("text", "")
    payload = base64.b64encode(text.encode()).decode()
    synapse = cls(task_type=item["task_type"], input_data=payload, language="en")
    async with bt.Dendrite(wallet=wallet) as dendrite:
        answer = await dendrite.forward(axons=[axon], synapse=synapse, timeout=10, deserialize=False)
    answer = answer[0]
    output = answer.output_data
    return {
        "label": item["label"],
        "status_code": int(answer.dendrite.status_code),
        "status_message": answer.dendrite.status_message,
        "error_message": answer.error_message,
        "output_bytes": len(base64.b64decode(output)) if output else 0,
    }


async def main() -> None:
    plan = json.load(sys.stdin)
    root = tempfile.mkdtemp(prefix="dendrite-peer-")
    for item in plan:
        print(json.dumps(await call(root, item)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
