"""Signed checkpoints of the audit chain's head, kept outside the database (as CloudTrail digest files are).

The keyed chain stops anyone without the app secret from changing, inserting or renumbering events, but
not from cutting the newest events off and rewinding the head, or from emptying the log: what is left is
still a valid chain. A checkpoint file records (sequence number, hash) of the head at a moment, signed
with a key derived from the app secret; ``verify`` then knows the log once reached that event with that
hash. Each file names the one before it with its SHA-256, so deleting a file in the middle shows too.

Files are ``checkpoint-<seq>-<time>.json`` in ``DUET_AUDIT_ANCHORS`` (default ``<home>/audit``), written
whole (temporary file, fsync, rename), 0600 in a 0700 folder. Keep the folder somewhere the database's
administrators cannot write (another host's mount, a synced or write-once store): it is the outside view.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from server.keys import AppKeys, constant_time_equal, private_folder

log = logging.getLogger(__name__)
FORMAT = "duet-audit-checkpoint/1"
PURPOSE = "audit-checkpoint"


@dataclass(frozen=True)
class Head:
    """Where the chain stood: the last event's number and hash, and the first event keyed with HMAC."""

    seq: int
    hash: str
    keyed_from: int | None


@dataclass(frozen=True)
class Checkpoint:
    file: str
    head: Head
    written_at: str
    previous: str | None
    previous_sha256: str | None


@dataclass(frozen=True)
class Loaded:
    """Every readable, correctly signed checkpoint (by sequence number), or the first problem found."""

    checkpoints: list[Checkpoint]
    problem: str = ""


class CheckpointFiles:
    def __init__(self, folder: Path, keys: AppKeys) -> None:
        self.folder = folder
        self._key = keys.derive(PURPOSE)

    def _sign(self, payload: dict[str, object]) -> str:
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self._key, body, hashlib.sha256).hexdigest()

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("checkpoint-*.json") if p.is_file())

    def newest_seq(self) -> int:
        """The highest sequence number any checkpoint file records (0 when there is none)."""
        files = self._files()
        return int(files[-1].name.split("-")[1]) if files else 0

    def write(self, head: Head, at: datetime) -> Path | None:
        """Write a checkpoint of ``head`` (committed events only), chained to the newest file; None when the
        newest file already records this event or a later one."""
        private_folder(self.folder)
        files = self._files()
        if files and int(files[-1].name.split("-")[1]) >= head.seq:
            return None
        previous = files[-1] if files else None
        payload: dict[str, object] = {
            "format": FORMAT, "seq": head.seq, "hash": head.hash, "keyed_from": head.keyed_from,
            "written_at": at.isoformat(timespec="microseconds"),
            "previous": previous.name if previous else None,
            "previous_sha256": hashlib.sha256(previous.read_bytes()).hexdigest() if previous else None,
        }
        data = json.dumps(payload | {"signature": self._sign(payload)}, indent=2, sort_keys=True).encode() + b"\n"
        name = f"checkpoint-{head.seq:012d}-{at.strftime('%Y%m%dT%H%M%S%fZ')}.json"
        target = self.folder / name
        tmp = self.folder / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target

    def load(self) -> Loaded:
        """Read and check every checkpoint: its signature, and that the file it follows is there unchanged."""
        found: list[Checkpoint] = []
        names: dict[str, bytes] = {}
        for path in self._files():
            raw = path.read_bytes()
            names[path.name] = raw
            try:
                data = json.loads(raw)
                signature = str(data.pop("signature"))
                head = Head(int(data["seq"]), str(data["hash"]),
                            None if data["keyed_from"] is None else int(data["keyed_from"]))
                ok = data.get("format") == FORMAT and constant_time_equal(self._sign(data), signature)
            except (ValueError, KeyError, TypeError, AttributeError):
                ok = False
            if not ok:
                return Loaded(found, f"checkpoint {path.name} is not signed with this installation's key "
                                     "(forged, damaged, or from another installation)")
            found.append(Checkpoint(path.name, head, str(data["written_at"]), data["previous"],
                                    data["previous_sha256"]))
        for cp in found:
            if cp.previous is None:
                continue
            if cp.previous not in names:
                return Loaded(found, f"checkpoint {cp.previous} is missing (checkpoint {cp.file} follows it): "
                                     "checkpoint files were deleted")
            if hashlib.sha256(names[cp.previous]).hexdigest() != cp.previous_sha256:
                return Loaded(found, f"checkpoint {cp.previous} was changed after {cp.file} was written")
        found.sort(key=lambda c: (c.head.seq, c.file))
        return Loaded(found)
