"""The subnet's `AudioTask` synapse, declared as the subnet's Python miners declare it."""

from typing import Optional

import bittensor as bt


class AudioTask(bt.Synapse):
    task_type: str = "transcription"
    input_data: str
    language: str = "en"
    output_data: Optional[str] = None
    processing_time: Optional[float] = None
    pipeline_model: Optional[str] = None
    error_message: Optional[str] = None


def wallet_from_uri(root: str, name: str, uri: str) -> "bt.Wallet":
    """An unencrypted wallet whose coldkey and hotkey are the dev key `uri` (e.g. //Bob)."""
    wallet = bt.Wallet(name=name, hotkey="default", path=root)
    wallet.create_coldkey_from_uri(uri, use_password=False, overwrite=True, suppress=True)
    wallet.create_hotkey_from_uri(uri, use_password=False, overwrite=True, suppress=True)
    return wallet
