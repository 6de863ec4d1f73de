"""How an audit event is hashed: a canonical encoding, chained to the previous event's hash.

Events written now carry an HMAC-SHA256 under a key derived from the app secret (``keyed_hash``); chains
written before the key carry a plain SHA-256 (``event_hash``), which anyone can recompute.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

GENESIS = "0" * 64


def _canonical(seq: int, at: datetime, actor: str, action: str, target: str, details: str, source: str) -> bytes:
    return json.dumps(
        [seq, at.astimezone(UTC).isoformat(timespec="microseconds"), actor, action, target, details, source],
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def event_hash(
    prev: str, seq: int, at: datetime, actor: str, action: str, target: str, details: str, source: str
) -> str:
    """The unkeyed hash of chains written before the key: anyone can compute it, so it proves nothing alone."""
    return hashlib.sha256(prev.encode() + _canonical(seq, at, actor, action, target, details, source)).hexdigest()


def keyed_hash(key: bytes, prev: str, seq: int, at: datetime, actor: str, action: str, target: str, details: str,
               source: str) -> str:
    """The hash of every event written now: only a holder of the app secret can compute it."""
    message = prev.encode() + _canonical(seq, at, actor, action, target, details, source)
    return hmac.new(key, message, hashlib.sha256).hexdigest()
