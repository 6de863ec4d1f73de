"""Subject access and erasure on request, with real sealed recordings in a folder store."""

from __future__ import annotations

import json
import stat
import uuid
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import Staff
from server.audit.log import Actor
from server.audit.models import AuditEvent
from server.bookings.models import BookingKind, SessionAttendance
from server.bookings.services import NewBooking
from server.checks.models import CheckRun
from server.clock import FakeClock
from server.consent.services import Grant
from server.errors import Conflict, InvalidInput, NotFound
from server.gdpr import ClientErasure, SubjectAccess
from server.links.models import AccessLink
from server.people.models import Client, Guardian
from server.plans.models import BlendedPlan, PlanBooking, PlanResource
from server.recording.keywrap import X25519KeyFiles
from server.recording.models import Recording, RecordingHold
from server.recording.review import ReviewService
from server.recording.stores import FolderStore
from server.recording.writer import begin_recording
from server.retention.dates import EraseDates
from server.retention.job import RetentionJob
from server.safeguarding.models import Concern
from server.services import Services
from server.storage_policies.loader import load_policies
from server.visits.models import Visit, VisitRecord
from tests.support.org import SETUP, Org

POLICIES = Path(__file__).resolve().parents[2] / "storage_policies"
DPO = Actor("cli", "cli")


@pytest.fixture
def store(tmp_path: Path) -> FolderStore:
    return FolderStore(tmp_path / "recordings")


@pytest.fixture
def keys(tmp_path: Path) -> X25519KeyFiles:
    files = X25519KeyFiles(tmp_path / "keys")
    files.ensure()
    return files


@pytest.fixture
def job(services: Services, clock: FakeClock, store: FolderStore, tmp_path: Path) -> RetentionJob:
    return RetentionJob(EraseDates(load_policies(POLICIES), clock, services.audit), store, tmp_path / "spool")


@pytest.fixture
def access(services: Services, clock: FakeClock, store: FolderStore, keys: X25519KeyFiles,
           job: RetentionJob) -> SubjectAccess:
    return SubjectAccess(ReviewService(store, keys.wrapper(), services.audit), lambda: job.policies, services.audit,
                         clock, "Test Music Service")


@pytest.fixture
def erasure(services: Services, clock: FakeClock, job: RetentionJob) -> ClientErasure:
    return ClientErasure(job, services.links, services.audit, clock)


async def sealed_recording(sm: async_sessionmaker[AsyncSession], store: FolderStore, keys: X25519KeyFiles,
                           booking_id: int, clock: FakeClock, media: bytes) -> uuid.UUID:
    """A real encrypted recording: two sealed chunks (the second final) under a wrapped data key."""
    rid = uuid.uuid4()
    new = begin_recording(rid, keys.public_wrapper())
    half = len(media) // 2
    for index, blob in (new.sealer.seal(media[:half]), new.sealer.finish(media[half:])):
        await store.put_chunk(rid, index, blob)
    async with sm() as s:
        s.add(Recording(id=rid, booking_id=booking_id, status="stopped", key_scheme=new.wrapped_key.scheme,
                        key_id=new.wrapped_key.key_id, wrapped_key=new.wrapped_key.blob, header=new.header.to_bytes(),
                        store_key=str(rid), started_by="staff:1", started_at=clock.now(), ended_at=clock.now()))
        await s.commit()
    return rid


async def second_booking(services: Services, sm: async_sessionmaker[AsyncSession], org: Org,
                         clock: FakeClock) -> int:
    async with sm() as s:
        booking = await services.bookings.create(s, SETUP, NewBooking(
            kind=BookingKind.LIVE_VIDEO, practitioner_id=org.tutor_id, client_id=org.child_id,
            starts_at=clock.now() + timedelta(hours=3), duration_minutes=30, guardian_ids=(org.guardian_id,)))
        await s.commit()
        return booking.id


async def hold(sm: async_sessionmaker[AsyncSession], org: Org, booking_id: int, clock: FakeClock) -> None:
    async with sm() as s:
        concern = Concern(category="other", details="worrying remark in the lesson", raised_by="staff:1",
                          raised_by_staff_id=org.safeguarding_id, booking_id=booking_id, client_id=org.child_id,
                          raised_at=clock.now(), discuss_by=clock.now() + timedelta(days=1))
        s.add(concern)
        await s.flush()
        s.add(RecordingHold(concern_id=concern.id, booking_id=booking_id, reason="evidence",
                            placed_by_id=org.safeguarding_id, placed_at=clock.now()))
        await s.commit()


async def plan_for_kit(sm: async_sessionmaker[AsyncSession], org: Org, clock: FakeClock) -> int:
    """A blended plan with goals about Kit, the lesson in it, and a resource note."""
    async with sm() as s:
        plan = BlendedPlan(client_id=org.child_id, lead_practitioner_id=org.tutor_id, title="Kit's grade 1 term",
                           goals="Build confidence after a hard year at school", starts_on=clock.now().date(),
                           ends_on=clock.now().date() + timedelta(days=90), created_at=clock.now())
        s.add(plan)
        await s.flush()
        s.add(PlanBooking(plan_id=plan.id, booking_id=org.booking_id, added_at=clock.now()))
        s.add(PlanResource(plan_id=plan.id, title="Practice notes", note="Kit prefers short pieces",
                           added_at=clock.now()))
        await s.commit()
        return plan.id


async def visit_with_record(sm: async_sessionmaker[AsyncSession], org: Org, booking_id: int, clock: FakeClock,
                            notes: str, concerns: bool) -> None:
    """A stand-in visit row on ``booking_id`` with the practitioner's after-visit record."""
    async with sm() as s:
        visit = Visit(booking_id=booking_id, location_kind="home", address="1 Mill Lane", created_at=clock.now())
        s.add(visit)
        await s.flush()
        s.add(VisitRecord(visit_id=visit.id, notes=notes, safeguarding_concerns=concerns,
                          recorded_by_id=org.tutor_id, recorded_at=clock.now()))
        await s.commit()


async def audit_actions(sm: async_sessionmaker[AsyncSession], target: str) -> list[str]:
    async with sm() as s:
        return list((await s.scalars(select(AuditEvent.action).where(AuditEvent.target == target)
                                     .order_by(AuditEvent.seq))).all())


async def test_the_access_bundle_holds_their_data_and_recordings_and_withholds_what_is_held(
        services: Services, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession],
        store: FolderStore, keys: X25519KeyFiles, access: SubjectAccess, job: RetentionJob, tmp_path: Path) -> None:
    other = await second_booking(services, sessionmaker, org, clock)
    await plan_for_kit(sessionmaker, org, clock)
    await visit_with_record(sessionmaker, org, org.booking_id, clock, "Lesson went well; scales improving.", False)
    await visit_with_record(sessionmaker, org, other, clock, "Bruise on the arm, explained as a fall.", True)
    async with sessionmaker() as s:
        s.add(SessionAttendance(booking_id=org.booking_id, subject=f"guardian:{org.guardian_id}",
                                role="participant", first_joined_at=clock.now(), last_joined_at=clock.now()))
        await s.commit()
    async with sessionmaker() as s:
        await services.consent.give(s, SETUP, f"guardian:{org.guardian_id}", f"client:{org.child_id}",
                                    Grant(record=True, safeguarding=True, feedback=False), clock.now().date())
        await s.commit()
    clock.advance(timedelta(hours=1))
    lesson = await sealed_recording(sessionmaker, store, keys, org.booking_id, clock, b"webm lesson " * 500)
    gone = await sealed_recording(sessionmaker, store, keys, org.booking_id, clock, b"old lesson")
    await job.erase(sessionmaker, gone)
    clock.advance(timedelta(hours=2))
    held = await sealed_recording(sessionmaker, store, keys, other, clock, b"evidence " * 100)
    await hold(sessionmaker, org, other, clock)

    out = tmp_path / "sar.zip"
    async with sessionmaker() as s:
        bundle = await access.export(s, DPO, org.child_id, out)
    assert bundle.recordings == 1 and bundle.withheld[0] == f"recording:{held}"
    assert [w for w in bundle.withheld if w.startswith("after-visit")] == [
        "after-visit record 2 (safeguarding concerns)"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # as sensitive as the recordings
    with zipfile.ZipFile(out) as zf:
        assert zf.read(f"recordings/{lesson}.webm") == b"webm lesson " * 500  # decrypted, byte for byte
        assert f"recordings/{held}.webm" not in zf.namelist()
        person = json.loads(zf.read("person.json"))
        assert person["client"]["first_name"] == "Kit"
        assert person["guardians"][0]["email"] == "gail@family.example.org"
        bookings = {b["id"]: b for b in json.loads(zf.read("bookings.json"))}
        assert set(bookings) == {org.booking_id, other}
        assert bookings[org.booking_id]["visit"]["after_visit_record"]["notes"] == "Lesson went well; scales improving."
        assert bookings[other]["visit"]["after_visit_record"] == "withheld for the safeguarding lead's review"
        assert "Bruise" not in zf.read("bookings.json").decode()
        assert [a["subject"] for a in json.loads(zf.read("attendance.json"))] == [f"guardian:{org.guardian_id}"]
        consents = json.loads(zf.read("consents.json"))
        assert consents[0]["scope_record"] is True and consents[0]["given_by"] == f"guardian:{org.guardian_id}"
        [plan] = json.loads(zf.read("plans.json"))
        assert (plan["goals"], plan["bookings"]) == ("Build confidence after a hard year at school", [org.booking_id])
        assert [r["note"] for r in plan["resources"]] == ["Kit prefers short pieces"]
        listing = {r["id"]: r["state"] for r in json.loads(zf.read("recordings.json"))}
        assert listing[str(gone)].startswith("erased on 2026-11-23 under the")
        assert listing[str(held)] == "withheld for the safeguarding lead's review"
        actions = [e["action"] for e in json.loads(zf.read("audit.json"))]
        assert "consent.given" in actions and "booking.created" in actions
        assert not [a for a in actions if a.startswith(("concern.", "recording.hold"))]
        assert "safeguarding lead must review" in zf.read("README.txt").decode()
    assert "gdpr.access_exported" in await audit_actions(sessionmaker, f"client:{org.child_id}")
    assert "recording.exported" in await audit_actions(sessionmaker, f"recording:{lesson}")


async def test_an_existing_file_or_an_unknown_client_is_refused_before_anything_is_audited(
        org: Org, sessionmaker: async_sessionmaker[AsyncSession], access: SubjectAccess, tmp_path: Path) -> None:
    out = tmp_path / "sar.zip"
    out.write_bytes(b"an earlier bundle")
    async with sessionmaker() as s:
        with pytest.raises(InvalidInput, match="already exists"):
            await access.export(s, DPO, org.child_id, out)
        with pytest.raises(NotFound, match="no client with id 999"):
            await access.export(s, DPO, 999, tmp_path / "new.zip")
        with pytest.raises(InvalidInput, match="does not exist"):
            await access.export(s, DPO, org.child_id, tmp_path / "no-such-folder" / "x.zip")
    assert out.read_bytes() == b"an earlier bundle" and not (tmp_path / "new.zip").exists()
    assert "gdpr.access_exported" not in await audit_actions(sessionmaker, f"client:{org.child_id}")


async def test_a_childs_therapy_recording_is_kept_until_the_25th_birthday_with_the_reason(
        org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession], store: FolderStore,
        keys: X25519KeyFiles, erasure: ClientErasure) -> None:
    async with sessionmaker() as s:  # a therapist's sessions are clinical records
        tutor = await s.get(Staff, org.tutor_id)
        assert tutor is not None
        tutor.is_therapist, tutor.hcpc_number = True, "AS12345"
        await s.commit()
    clock.advance(timedelta(hours=1))
    therapy = await sealed_recording(sessionmaker, store, keys, org.booking_id, clock, b"therapy")
    clock.advance(timedelta(hours=2))
    planned = await erasure.erase(sessionmaker, DPO, org.child_id, dry_run=True)
    report = await erasure.erase(sessionmaker, DPO, org.child_id)
    assert planned.kept == report.kept and report.erased_recordings == []
    [kept] = report.kept
    assert kept.until == date(clock.now().year + 15, 3, 1)  # Kit is 10 and born on 1 March
    assert "17(3)" in kept.why and kept.what.startswith(f"recording {therapy}")
    assert report.personal_details == (
        f"kept, because the records above must still say whose they are; ask again after {kept.until}")
    assert f"kept recording {therapy} (booking {org.booking_id}" in "\n".join(report.lines())
    assert await store.exists(therapy)
    async with sessionmaker() as s:
        client = await s.get(Client, org.child_id)
        row = await s.get(Recording, therapy)
        assert client is not None and client.first_name == "Kit"
        assert row is not None and row.wrapped_key is not None


async def test_erasure_of_a_tuition_only_client_erases_recordings_and_their_details(
        services: Services, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession],
        store: FolderStore, keys: X25519KeyFiles, erasure: ClientErasure) -> None:
    clock.advance(timedelta(hours=1))
    lesson = await sealed_recording(sessionmaker, store, keys, org.booking_id, clock, b"lesson")
    plan_id = await plan_for_kit(sessionmaker, org, clock)
    await visit_with_record(sessionmaker, org, org.booking_id, clock, "Kit's mum mentioned the new school.", False)
    async with sessionmaker() as s:
        s.add(CheckRun(booking_id=org.booking_id, subject=f"guardian:{org.guardian_id}", source="127.0.0.1",
                       created_at=clock.now(), measurements="{}", verdict="video ready", reasons="[]",
                       music_advisable=True, music_reasons="[]", device="Firefox on a laptop", shared_with="",
                       safeguarding_measures=""))
        await s.commit()
    clock.advance(timedelta(hours=2))  # the lesson is over
    planned = await erasure.erase(sessionmaker, DPO, org.child_id, dry_run=True)
    assert planned.erased_recordings == [str(lesson)] and planned.removed["device check results"] == 1
    assert await store.exists(lesson)  # a dry run changes nothing
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(CheckRun)) == 1
        assert (await s.get(Client, org.child_id)).first_name == "Kit"  # type: ignore[union-attr]
    report = await erasure.erase(sessionmaker, DPO, org.child_id)
    assert report.erased_recordings == [str(lesson)] and report.kept == []
    assert not await store.exists(lesson)
    async with sessionmaker() as s:
        row = await s.get(Recording, lesson)
        assert row is not None and row.wrapped_key is None and row.erased_at is not None
        client = await s.get(Client, org.child_id)
        guardian = await s.get(Guardian, org.guardian_id)
        assert client is not None and guardian is not None
        assert (client.name, client.status, client.date_of_birth.month) == (f"Erased client {org.child_id}",
                                                                             "erased", 1)
        assert guardian.email == f"erased-{org.guardian_id}@invalid" and guardian.phone == ""
        assert await s.scalar(select(func.count()).select_from(CheckRun)) == 0
        plan = await s.get_one(BlendedPlan, plan_id)
        assert (plan.title, plan.goals) == (f"Erased plan {plan_id}", "")
        assert await s.scalar(select(func.count()).select_from(PlanResource)) == 0
        assert (await s.scalars(select(VisitRecord.notes))).all() == ["Erased on request."]
        live_links = await s.scalar(select(func.count()).select_from(AccessLink).where(
            AccessLink.booking_id == org.booking_id, AccessLink.revoked_at.is_(None)))
        assert live_links == 0
        erased = (await s.scalars(select(AuditEvent.details).where(AuditEvent.action == "recording.erased"))).one()
    assert f"erasure request for client {org.child_id}" in erased
    assert "gdpr.erasure_request" in await audit_actions(sessionmaker, f"client:{org.child_id}")


async def test_a_held_recording_is_kept_until_the_hold_is_lifted(
        org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession], store: FolderStore,
        keys: X25519KeyFiles, erasure: ClientErasure) -> None:
    clock.advance(timedelta(hours=1))
    rid = await sealed_recording(sessionmaker, store, keys, org.booking_id, clock, b"evidence")
    await hold(sessionmaker, org, org.booking_id, clock)
    clock.advance(timedelta(hours=2))
    report = await erasure.erase(sessionmaker, DPO, org.child_id)
    assert report.erased_recordings == [] and report.kept[0].until is None
    assert "until the hold is lifted" in "\n".join(report.lines()) and await store.exists(rid)


async def test_erasure_waits_until_every_booking_has_ended(
        org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession], store: FolderStore,
        keys: X25519KeyFiles, erasure: ClientErasure) -> None:
    rid = await sealed_recording(sessionmaker, store, keys, org.booking_id, clock, b"lesson")
    with pytest.raises(Conflict, match=f"still has bookings that have not ended \\({org.booking_id} on"):
        await erasure.erase(sessionmaker, DPO, org.child_id)
    assert await store.exists(rid)
    async with sessionmaker() as s:
        client = await s.get(Client, org.child_id)
        assert client is not None and client.first_name == "Kit"
