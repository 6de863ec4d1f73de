"""The composition root: every service of one Duet process, built once from the settings.

``duet serve`` (through ``server.app.create_app``) and every ``duet`` command build their parts here and
nowhere else, and close them here (``close``): the recording store, the spool, the media router, the probe
rooms. Embedded defaults and their production switches are chosen here too:

* recordings in ``<home>/recordings`` (folder store), or any S3 API with ``DUET_STORE=s3://bucket``;
* data keys wrapped to the X25519 key pair in ``<home>/keys/recording``, or by AWS KMS with
  ``DUET_KMS_KEY_ID``; the recorder holds only what wraps, review and export what unwraps;
* mail as ``.eml`` files in ``<home>/outbox``, or SMTP with ``DUET_MAIL_URL``; a wrong value is a
  ``ConfigError`` naming the setting, so start-up stops with one clear line.

Periodic background work is declared by each domain's ``tasks.py`` and collected by ``periodic``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.logins import Logins
from server.accounts.services import StaffService
from server.audit import tasks as audit_tasks
from server.audit.log import AuditLog
from server.bookings.attendance import Attendance
from server.bookings.evening import EveningWork
from server.bookings.services import BookingService
from server.chat.services import ChatService
from server.checks.probes import Probes
from server.checks.services import CheckService
from server.clock import Clock, Periodic, SystemClock
from server.config import ConfigError, Settings
from server.consent.services import ConsentService
from server.errors import InvalidInput
from server.events import Events
from server.gdpr import ClientErasure, SubjectAccess
from server.invitations import tasks as invitation_tasks
from server.invitations.reminders import Reminders
from server.invitations.services import BookingNotifier
from server.keys import AppKeys, private_folder
from server.links.services import LinkService
from server.mail import tasks as mail_tasks
from server.mail.failures import failure_recorder
from server.mail.messages import Organisation
from server.mail.outbox import Sender
from server.mail.transports import MailTransport, transport_from_url
from server.media import MediaRouter
from server.media.pool import WorkerPool
from server.people.services import PeopleService
from server.plans.services import PlanService
from server.recording.holds import Holds
from server.recording.keywrap import KeyWrapper, KmsWrapper, X25519KeyFiles
from server.recording.review import ReviewService
from server.recording.services import RecordingService
from server.recording.spool import Spool
from server.recording.stores import FolderStore, RecordingStore, S3Store
from server.retention import tasks as retention_tasks
from server.retention.dates import EraseDates
from server.retention.job import RetentionJob
from server.safeguarding import tasks as safeguarding_tasks
from server.safeguarding.services import SafeguardingService
from server.visits import tasks as visit_tasks
from server.visits.lonework import LoneWorking, OverdueAlerts
from server.visits.records import VisitRecords
from server.visits.services import VisitService


@dataclass(frozen=True)
class MailSetup:
    transport: MailTransport
    organisation: Organisation


def mail_from_settings(settings: Settings) -> MailSetup:
    """The transport DUET_MAIL_URL names and the sender identity from DUET_MAIL_FROM / DUET_ORGANISATION."""
    try:
        transport = transport_from_url(settings.mail_url, settings.home)
    except InvalidInput as exc:
        raise ConfigError("DUET_MAIL_URL", exc.detail.removeprefix("DUET_MAIL_URL").lstrip(": ")) from None
    organisation = Organisation(settings.organisation, settings.mail_from, contact=settings.contact_email or None)
    try:
        organisation.sender  # noqa: B018 - parse now so a bad DUET_MAIL_FROM stops start-up
    except InvalidInput as exc:
        raise ConfigError("DUET_MAIL_FROM", exc.detail) from None
    return MailSetup(transport=transport, organisation=organisation)


def store_from_settings(settings: Settings) -> RecordingStore:
    if settings.store.startswith("s3://"):
        return S3Store.from_settings(
            bucket=settings.store[len("s3://"):].strip("/"), endpoint_url=settings.s3_endpoint or None,
            region=settings.s3_region, access_key=settings.s3_access_key or None,
            secret_key=settings.s3_secret_key or None)
    return FolderStore(settings.home / "recordings")


def key_files(settings: Settings) -> X25519KeyFiles:
    return X25519KeyFiles(settings.keys_dir / "recording")


def wrapper_from_settings(settings: Settings, *, can_unwrap: bool = False) -> KeyWrapper:
    """The recorder wraps only (public key); review and export also unwrap (``can_unwrap``)."""
    if settings.kms_key_id:
        import boto3

        return KmsWrapper(boto3.client("kms", region_name=settings.s3_region), settings.kms_key_id)
    files = key_files(settings)
    files.ensure()
    return files.wrapper() if can_unwrap else files.following_wrapper()


@dataclass(frozen=True)
class Services:
    """Every service, built once. Fields are the services; ``build`` is the only constructor used."""

    settings: Settings
    clock: Clock
    media_clock: Clock  # real time for media, even when ``clock`` is a test's FakeClock
    keys: AppKeys
    events: Events  # facts open live sessions act on, delivered after their transaction commits
    audit: AuditLog
    logins: Logins
    staff: StaffService
    people: PeopleService
    bookings: BookingService
    attendance: Attendance
    links: LinkService
    notifier: BookingNotifier
    reminders: Reminders
    consent: ConsentService
    chat: ChatService
    checks: CheckService
    visits: VisitService
    lone_working: LoneWorking
    overdue: OverdueAlerts
    visit_records: VisitRecords
    plans: PlanService
    safeguarding: SafeguardingService
    holds: Holds
    erase_dates: EraseDates
    retention: RetentionJob
    mail: MailSetup
    media: MediaRouter  # the router's API, in this process or proxied to the worker processes
    media_pool: WorkerPool | None
    probes: Probes
    store: RecordingStore
    spool: Spool
    recording: RecordingService
    review: ReviewService
    subject_access: SubjectAccess
    erasure: ClientErasure

    @classmethod
    def build(cls, settings: Settings, clock: Clock, keys: AppKeys, *, media_clock: Clock | None = None) -> Services:
        media_clock = media_clock or SystemClock()
        events = Events()
        audit = AuditLog(clock, keys, private_folder(settings.audit_anchor_dir), settings.audit_checkpoint_every)
        logins = Logins(settings, clock, audit, keys, events=events)
        links = LinkService(settings, clock, audit, keys, events)
        consent = ConsentService(clock, audit, settings.organisation, settings.storage_policies, events)
        notifier = BookingNotifier(settings, clock, links, consent)
        bookings = BookingService(clock, audit, notifier, evening=EveningWork(settings, clock, audit), events=events)
        visits = VisitService(settings, clock, audit, bookings)
        erase_dates = EraseDates(settings.storage_policies, clock, audit, settings.time_zone)
        holds = Holds(clock, audit, erase_dates)
        store = store_from_settings(settings)
        spool_root: Path = settings.home / "spool"
        private_folder(spool_root)
        spool = Spool(spool_root, store, media_clock, min_free_bytes=settings.spool_min_free_mb * 1024 * 1024)
        # Sealing every 2 s and upload retries follow real time, like the media they carry.
        recording = RecordingService(media_clock, audit, consent, wrapper_from_settings(settings), spool, erase_dates)
        review = ReviewService(store, wrapper_from_settings(settings, can_unwrap=True), audit)
        retention = RetentionJob(erase_dates, store, spool_root)
        # Media timing (connect deadlines, keyframe rate limits) follows real time even under a FakeClock.
        # Rooms live in worker processes, one per core by default (DUET_MEDIA_WORKERS; 0: in this process).
        pool = WorkerPool(settings.media_workers, settings.ice_server_list(), clock=media_clock) \
            if settings.media_workers else None
        media = cast(MediaRouter, pool) if pool is not None else MediaRouter(
            settings.ice_server_list(), clock=media_clock, media_clock=media_clock)
        return cls(
            settings=settings, clock=clock, media_clock=media_clock, keys=keys, events=events, audit=audit,
            logins=logins, staff=StaffService(clock, audit, keys, logins, events),
            people=PeopleService(clock, audit),
            bookings=bookings,
            attendance=Attendance(settings, clock),
            links=links,
            notifier=notifier,
            reminders=Reminders(clock, notifier),
            consent=consent,
            chat=ChatService(clock),
            checks=CheckService(clock, audit),
            visits=visits, lone_working=LoneWorking(clock, audit, visits),
            overdue=OverdueAlerts(settings, clock, audit),
            visit_records=VisitRecords(clock, audit, visits),
            plans=PlanService(settings, clock, audit),
            safeguarding=SafeguardingService(settings, clock, audit, holds, erase_dates, events),
            holds=holds,
            erase_dates=erase_dates,
            retention=retention,
            mail=mail_from_settings(settings),
            media=media, media_pool=pool,
            probes=Probes(media, media_clock),
            store=store,
            spool=spool,
            recording=recording,
            review=review,
            subject_access=SubjectAccess(review, lambda: erase_dates.policies, audit, clock, settings.organisation),
            erasure=ClientErasure(retention, links, audit, clock),
        )

    async def start(self) -> None:
        """Start what runs beside requests: the media worker processes and the spool's uploads."""
        if self.media_pool is not None:
            await self.media_pool.start()
        self.spool.start()

    def sender(self, sessionmaker: async_sessionmaker[AsyncSession]) -> Sender:
        """The outbox sender over the configured transport; failures are audited."""
        return Sender(sessionmaker, self.mail.transport, self.clock,
                      on_failure=failure_recorder(sessionmaker, self.audit))

    def periodic(self, sessionmaker: async_sessionmaker[AsyncSession]) -> list[Periodic]:
        """Every domain's periodic work (each declared in its ``tasks.py``): the audit chain's daily anchor and
        check, overdue-visit alerts, concern escalation, the outbox sender, reminders, the daily retention run."""
        return [*audit_tasks.periodic(self.audit, sessionmaker),
                *visit_tasks.periodic(self.overdue, sessionmaker),
                *safeguarding_tasks.periodic(self.safeguarding, sessionmaker),
                *mail_tasks.periodic(self.sender(sessionmaker)),
                *invitation_tasks.periodic(self.reminders, sessionmaker),
                *retention_tasks.periodic(self.retention, sessionmaker)]

    async def close(self) -> None:
        """Release what the services hold open: media rooms and probes, the spool's uploads, the store's
        connections and the mail transport."""
        await self.probes.close()
        await self.recording.close()
        await self.media.close()
        await self.spool.close()
        await asyncio.gather(self.store.close(), self.mail.transport.close())
