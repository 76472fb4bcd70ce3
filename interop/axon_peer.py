"""A real, unmodified `bittensor.Axon` (10.5.0) serving `AudioTask` on loopback.

    python axon_peer.py --port 18091 --hotkey //Bob --allow 5Grw...,5FHn...

The miner answers like a subnet miner: a transcript for transcription, a WAV for tts, the first
sentence for summarization. Its blacklist refuses every dendrite hotkey not in `--allow` (403), as
miners refuse callers that are not registered validators. Two inputs trigger failures:
`please set error_message` (HTTP 200 with `error_message`) and `please raise` (the forward raises:
HTTP 500). Prints `READY <port>` once serving; stops when stdin closes.

The only change to the Axon is its bind address: the SDK binds 0.0.0.0, the tests bind loopback.
"""

import argparse
import base64
import io
import math
import struct
import sys
import tempfile
import time
import wave
from typing import Tuple

import bittensor as bt

from audio_task import AudioTask, wallet_from_uri

TRANSCRIPT = "hello from a python axon"


def tone_wav(seconds: float = 0.5, rate: int = 16000) -> bytes:
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(int(seconds * rate))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hotkey", default="//Bob")
    parser.add_argument("--allow", default="", help="comma-separated SS58 hotkeys served")
    args = parser.parse_args()
    allowed = {h for h in args.allow.split(",") if h}

    wallet = wallet_from_uri(tempfile.mkdtemp(prefix="axon-peer-"), "miner", args.hotkey)

    def forward(synapse: AudioTask) -> AudioTask:
        started = time.time()
        text = ""
        if synapse.task_type != "transcription":
            text = base64.b64decode(synapse.input_data).decode("utf-8", "replace")
        if text == "please raise":
            raise RuntimeError("the model crashed")
        if text == "please set error_message":
            synapse.error_message = "model not loaded"
            return synapse
        if synapse.task_type == "transcription":
            base64.b64decode(synapse.input_data, validate=True)
            output = TRANSCRIPT.encode()
        elif synapse.task_type == "tts":
            output = tone_wav()
        else:
            output = (text.split(". ")[0].rstrip(".") + ".").encode()
        synapse.output_data = base64.b64encode(output).decode()
        synapse.pipeline_model = "python-axon-peer"
        synapse.processing_time = time.time() - started
        return synapse

    def blacklist(synapse: AudioTask) -> Tuple[bool, str]:
        if synapse.dendrite.hotkey in allowed:
            return False, "registered"
        return True, "not registered on this subnet"

    axon = bt.Axon(wallet=wallet, port=args.port, external_ip="127.0.0.1")
    axon.fast_server.config.host = "127.0.0.1"
    axon.attach(forward_fn=forward, blacklist_fn=blacklist)
    axon.start()
    print(f"READY {args.port} {wallet.hotkey.ss58_address}", flush=True)
    sys.stdin.read()
    axon.stop()


if __name__ == "__main__":
    main()
