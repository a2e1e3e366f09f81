"""Hub names through `datasets.load_dataset`, failing at once when the hub is unreachable.

Kept apart from data.py (local files) so the offline check is one small, testable piece.
"""

import os
import socket
from urllib.parse import urlparse

from textlstm import TextlstmError


def hub_offline_reason() -> str | None:
    """Why the hub cannot be reached, or None when it can (or might).

    `datasets` retries an unreachable hub for ~20 s before failing; checking the offline
    switches and one TCP connect (2 s at most) first makes the failure immediate.
    """
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var} is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=2).close()
    except OSError as exc:
        return f"{endpoint.hostname}:{port} cannot be reached ({exc.__class__.__name__})"
    return None


def load_from_hub(source: str):
    """`datasets.load_dataset(name[, config])`; `name:config` selects a configuration."""
    import datasets

    reason = hub_offline_reason()
    if reason is not None:
        raise TextlstmError(
            f"{source!r} is not a local path, and the Hugging Face hub is offline ({reason}). "
            "Point --data at a folder with train/validation/test .parquet/.csv/.jsonl files, "
            "or at a single file."
        )
    name, _, config = source.partition(":")
    try:
        return datasets.load_dataset(name, config or None)
    except Exception as exc:  # not found, gated, network drop, bad config...
        raise TextlstmError(f"could not load {source!r} from the hub: {exc}") from exc
