"""A live session ends for a person the moment their permission does.

Permission is what let them in: a link (a family, or staff by their own link) or a staff sign-in, and the
booking itself. The guard hears the facts that end it as they are committed (``server.events``): a link
revoked (resent, cancelled, moved, parental responsibility removed), sign-ins ended (sign out everywhere,
a suspension, a new password), a booking cancelled or moved, a person suspended. As a backstop for
anything missed (another node, a bug), it re-checks every member's link or sign-in every
``RECHECK_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging

from server.accounts.logins import Logins
from server.clock import Clock, LoopingCall
from server.events import (
    Event,
    Events,
    LinksRevoked,
    LoginsEnded,
    PersonSuspended,
    SessionEnded,
)
from server.links.services import LinkService
from server.subjects import Subject
from server.web.live.hub import Member, Session, SessionHub

log = logging.getLogger("duet.signalling")
RECHECK_SECONDS = 30.0
ENDED = "Your access to this session has ended. Please use the newest link from your email."


class SessionGuard:
    def __init__(self, hub: SessionHub, events: Events, links: LinkService, logins: Logins, media_clock: Clock,
                 *, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self._hub = hub
        self._links = links
        self._logins = logins
        self._clock = media_clock
        self._recheck_seconds = recheck_seconds
        self._tasks: set[asyncio.Task[None]] = set()
        self._recheck: LoopingCall | None = None
        events.subscribe(self._heard)

    def start(self) -> None:
        self._recheck = self._clock.every(self._recheck_seconds, self.recheck, name="live-session-recheck")

    async def close(self) -> None:
        if self._recheck is not None:
            await self._recheck.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def settled(self) -> None:
        """Wait until every event heard so far has been acted on (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _heard(self, event: Event) -> None:
        task = asyncio.get_running_loop().create_task(self._act(event), name=f"session-guard:{type(event).__name__}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _members(self) -> list[tuple[Session, Member]]:
        return [(s, m) for s in list(self._hub.sessions.values()) for m in list(s.members.values())]

    async def _act(self, event: Event) -> None:
        try:
            if isinstance(event, SessionEnded):
                await self._hub.end(event.booking_id, event.reason)
            elif isinstance(event, LinksRevoked):
                for session, member in self._members():
                    if member.link_id in event.link_ids:
                        await self._hub.remove_member(session, member, ENDED)
            elif isinstance(event, LoginsEnded):
                for session, member in self._members():
                    if member.login_id is not None and member.pid == Subject.staff(event.staff_id):
                        await self._hub.remove_member(session, member, event.reason)
            elif isinstance(event, PersonSuspended):
                await self._suspended(Subject(event.subject), event.reason)
        except Exception:  # noqa: BLE001 - the periodic re-check still ends what this missed
            log.exception("acting on %s failed", event)

    async def _suspended(self, subject: Subject, reason: str) -> None:
        """A suspended practitioner's or client's sessions end; anyone suspended leaves every session."""
        for session in list(self._hub.sessions.values()):
            if (subject.kind == "staff" and session.practitioner_id == subject.id) or (
                    subject.kind == "client" and session.client_id == subject.id):
                await self._hub.end(session.booking_id, "This session cannot go ahead at the moment.")
        await self._hub.remove_subject(None, subject, reason)

    async def recheck(self) -> int:
        """Re-read every member's link or sign-in; remove those no longer allowed. Returns how many."""
        removed = 0
        for session, member in self._members():
            async with self._hub.sessionmaker() as db:
                if member.link_id is not None:
                    allowed = await self._links.still_valid(db, member.link_id)
                elif member.login_id is not None:
                    allowed = await self._logins.still_open(db, member.login_id)
                else:
                    allowed = False
            if not allowed and session.members.get(member.pid) is member:
                await self._hub.remove_member(session, member, ENDED)
                removed += 1
        return removed
