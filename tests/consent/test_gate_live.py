"""The gate over stored consents as a live session would ask it: hub members (publishing, muted), and a
withdrawal through the link that tells listeners at once so the session can pause."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FakeClock
from server.consent.services import Grant
from server.events import ConsentChanged
from server.links.models import LinkPurpose
from server.recording.gate import decide, presence_of
from server.services import Services
from tests.support.org import SETUP, Org, issue_link

ON = {"audio": True, "video": True}
UNMUTED = {"audio": False, "video": False}


async def test_the_gate_follows_publishing_muting_and_a_withdrawal_in_mid_session(
        client: TestClient, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession],
        clock: FakeClock) -> None:
    day = clock.now().date()
    tutor, child, gail = f"staff:{org.tutor_id}", f"client:{org.child_id}", f"guardian:{org.guardian_id}"
    adult = f"client:{org.adult_id}"
    async with sessionmaker() as s:
        await services.consent.set_staff_agreement(s, SETUP, org.tutor_id, day)
        await services.consent.give(s, SETUP, gail, child, Grant(True, True, False), day)
        await s.commit()
    heard: list[str] = []
    services.events.subscribe(lambda event: heard.append(event.covers) if isinstance(event, ConsentChanged) else None)
    room = [presence_of(tutor, ON, UNMUTED), presence_of(child, ON, UNMUTED),
            presence_of(f"staff:{org.safeguarding_id}", {"audio": False, "video": False}, UNMUTED)]
    async with sessionmaker() as s:
        assert (await decide(services.consent, s, room, day)).open  # the silent observer does not count
        # Gail is on the call but both her tracks are muted: not seen or heard yet
        muted = presence_of(gail, ON, {"audio": True, "video": True})
        assert (await decide(services.consent, s, room + [muted], day)).open
        unmuted = await decide(services.consent, s, room + [presence_of(gail, ON, UNMUTED)], day)
        assert unmuted.reasons == ("no recording consent from Gail Guardian",)
        joined = await decide(services.consent, s, room + [presence_of(adult, ON, UNMUTED)], day)
        assert joined.reasons == ("no recording consent from Ada",)

    token = await issue_link(services, sessionmaker, org.booking_id, gail, LinkPurpose.CONSENT)
    await client.get(f"/l/{token}", allow_redirects=False)
    csrf = (await (await client.get(f"/s/{org.booking_id}/api/context")).json())["csrf_token"]
    response = await client.post(f"/s/{org.booking_id}/api/consent/withdraw", json={"covers": child},
                                 headers={"X-CSRF-Token": csrf})
    assert response.status == 200
    assert heard == [child]  # told after the commit, so a live session re-checks at once
    async with sessionmaker() as s:
        closed = await decide(services.consent, s, room, day)
    assert closed.reasons == ("no recording consent for Kit's guardian",)
