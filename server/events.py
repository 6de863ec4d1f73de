"""Facts that open live sessions must act on, published with the transaction that made them true.

A service that revokes a link, cancels or moves a booking, ends someone's sign-ins, suspends a person or
changes a consent calls ``Events.publish(session, event)`` inside its transaction. Listeners (the live
session hub, the recording gate) hear the event only once that transaction has committed: a rolled-back
change ends nobody's session. The truth stays in the tables; an event only wakes those who must re-read it,
which is why a listener that misses one (another node, a lost connection) still has a periodic backstop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
PENDING = "duet_events"  # key in Session.info: events waiting for the commit


@dataclass(frozen=True)
class LinksRevoked:
    """These links stopped working (resent, booking cancelled or moved, parental responsibility removed)."""

    link_ids: frozenset[int]
    reason: str


@dataclass(frozen=True)
class LoginsEnded:
    """Every sign-in of this member of staff ended (signed out everywhere, suspended, password changed)."""

    staff_id: int
    reason: str


@dataclass(frozen=True)
class SessionEnded:
    """The live session of this booking must end for everyone (cancelled, moved, a party suspended)."""

    booking_id: int
    reason: str


@dataclass(frozen=True)
class PersonSuspended:
    """This person may not be in any live session until reinstated."""

    subject: str
    reason: str


@dataclass(frozen=True)
class ConsentChanged:
    """A consent covering ``covers`` was given, changed or withdrawn: recording gates re-check."""

    covers: str


Event = LinksRevoked | LoginsEnded | SessionEnded | PersonSuspended | ConsentChanged
Listener = Callable[[Event], None]


@dataclass
class Events:
    """Publish after commit; listeners are plain callables (they schedule their own async work)."""

    listeners: list[Listener] = field(default_factory=list)

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def publish(self, session: AsyncSession, event: Event) -> None:
        """Deliver ``event`` to every listener once ``session``'s transaction commits (never on rollback)."""
        sync = session.sync_session
        pending: list[tuple[Events, Event]] | None = sync.info.get(PENDING)
        if pending is None:
            pending = sync.info[PENDING] = []
        pending.append((self, event))

    def deliver(self, event: Event) -> None:
        """Tell every listener now (after a commit, or an event that arrived from another node)."""
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - one listener's bug must not stop the others hearing it
                log.exception("event listener failed for %s", event)


@sa_event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    for bus, event in session.info.pop(PENDING, []):
        bus.deliver(event)


@sa_event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:  # the outermost transaction: its events never happened
        session.info.pop(PENDING, None)
