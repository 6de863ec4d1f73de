"""The Sender as Duet runs it: permanent failures reach the audit log and the dashboard; outages lose nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.models import AuditEvent
from server.clock import FakeClock
from server.config import Settings
from server.mail.outbox import SendReport
from server.services import Services, mail_from_settings
from tests.support.org import Org
from tests.support.smtp import SmtpTestServer

Login = Callable[[str], Awaitable[str]]


def _send(services: Services, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
          ) -> Awaitable[SendReport]:
    """``duet mail send-pending`` with these settings' mail transport."""
    return replace(services, mail=mail_from_settings(settings)).sender(sessionmaker).send_due()
GAIL = "gail@family.example.org"


async def test_unknown_user_is_audited_and_listed_for_the_office(
        client: TestClient, org: Org, login: Login, clock: FakeClock, services: Services,
        smtp_server: SmtpTestServer, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    smtp_server.reject.add(GAIL)
    settings = replace(services.settings, mail_url=smtp_server.url)
    report = await _send(services, settings, sessionmaker)
    assert (report.sent, report.failed) == (1, 1)  # the tutor's invitation went; Gail's was refused
    async with sessionmaker() as s:
        events = (await s.execute(select(AuditEvent).where(AuditEvent.action == "mail.failed"))).scalars().all()
    assert [e.target for e in events] == [f"booking:{org.booking_id}"] and GAIL in events[0].details
    await login("manager")
    failed = await (await client.get("/api/v1/mail/failed")).json()
    assert [(f["recipient"], f["booking_id"], f["invitee"]) for f in failed] == [
        (GAIL, org.booking_id, f"guardian:{org.guardian_id}")]
    assert "550" in failed[0]["error"]
    client.session.cookie_jar.clear()
    await login("tutor")
    assert (await client.get("/api/v1/mail/failed")).status == 403


async def test_smtp_down_for_a_while_loses_nothing(
        org: Org, clock: FakeClock, services: Services, smtp_server: SmtpTestServer,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    settings = replace(services.settings, mail_url=smtp_server.url)
    smtp_server.stop()
    down = await _send(services, settings, sessionmaker)
    assert (down.sent, down.retrying, down.failed) == (0, 2, 0)
    smtp_server.start()
    early = await _send(services, settings, sessionmaker)
    assert early.handled == 0  # backing off, not hammering
    clock.advance(timedelta(hours=1))
    up = await _send(services, settings, sessionmaker)
    assert up.sent == 2 and sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [GAIL, org.email("tutor")]
    again = await _send(services, settings, sessionmaker)
    assert again.handled == 0 and len(smtp_server.messages) == 2


async def test_duet_demo_writes_its_invitations_to_the_outbox(
        services: Services, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    from server.demo import run_demo
    from server.mail.models import OutboxMessage

    services.settings.keys_dir.mkdir(parents=True, exist_ok=True)  # `duet demo` keeps its logins there
    async with sessionmaker() as s:
        result = await run_demo(services, s)
        await s.commit()
    async with sessionmaker() as s:
        rows = (await s.execute(select(OutboxMessage).where(OutboxMessage.booking_id == result["booking_id"])))
        recipients = sorted(r.recipient for r in rows.scalars())
    assert recipients == sorted([result["staff"]["tutor"]["email"], "guardian@demo.example.org"])
    settings = replace(services.settings, mail_url="")
    report = await _send(services, settings, sessionmaker)
    files = sorted(p.name for p in (settings.home / "outbox").glob("*.eml"))
    assert report.sent >= 2 and any(f.startswith(f"booking-{result['booking_id']}.invite.") for f in files)
