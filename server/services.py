"""The domain services of one Duet process, built once from settings (the app factory's input)."""

from __future__ import annotations

from dataclasses import dataclass

from server.accounts.logins import Logins
from server.accounts.services import StaffService
from server.audit.log import AuditLog
from server.bookings.attendance import Attendance
from server.bookings.evening import EveningWork
from server.bookings.notify import BookingNotifier
from server.bookings.services import BookingService
from server.clock import Clock
from server.config import Settings
from server.consent.services import ConsentService
from server.keys import AppKeys
from server.links.service import LinkService
from server.people.services import PeopleService
from server.plans.services import PlanService
from server.retention.dates import EraseDates
from server.safeguarding.services import SafeguardingService
from server.visits.lonework import LoneWorking, OverdueAlerts
from server.visits.records import VisitRecords
from server.visits.services import VisitService


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    keys: AppKeys
    audit: AuditLog
    logins: Logins
    staff: StaffService
    people: PeopleService
    bookings: BookingService
    attendance: Attendance
    links: LinkService
    visits: VisitService
    lone_working: LoneWorking
    overdue: OverdueAlerts
    visit_records: VisitRecords
    plans: PlanService
    safeguarding: SafeguardingService
    consent: ConsentService
    erase_dates: EraseDates

    @classmethod
    def build(cls, settings: Settings, clock: Clock, keys: AppKeys) -> Services:
        audit = AuditLog(clock, keys, settings.audit_anchor_dir, settings.audit_checkpoint_every)
        logins = Logins(settings, clock, audit, keys)
        links = LinkService(settings, clock, audit, keys)
        consent = ConsentService(clock, audit, settings.organisation, settings.storage_policies)
        bookings = BookingService(clock, audit, BookingNotifier(settings, clock, links, consent),
                                  evening=EveningWork(settings, clock, audit))
        visits = VisitService(settings, clock, audit, bookings)
        erase_dates = EraseDates(settings.storage_policies, clock, audit, settings.time_zone)
        return cls(
            settings=settings, clock=clock, keys=keys, audit=audit, logins=logins,
            staff=StaffService(clock, audit, keys, logins),
            people=PeopleService(clock, audit),
            bookings=bookings,
            attendance=Attendance(settings, clock),
            links=links,
            visits=visits, lone_working=LoneWorking(clock, audit, visits),
            overdue=OverdueAlerts(settings, clock, audit),
            visit_records=VisitRecords(clock, audit, visits),
            plans=PlanService(settings, clock, audit),
            safeguarding=SafeguardingService(settings, clock, audit, erase_dates),
            consent=consent,
            erase_dates=erase_dates,
        )
