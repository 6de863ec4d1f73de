"""Periodic work of mail: the outbox sender (safe on every node at once: rows are leased)."""

from __future__ import annotations

from server.clock import Periodic
from server.mail.outbox import Sender

SEND_INTERVAL = 10.0  # seconds: an email waits at most this long after its transaction commits


def periodic(sender: Sender) -> list[Periodic]:
    return [Periodic("mail-sender", SEND_INTERVAL, sender.send_due, run_now=True)]
