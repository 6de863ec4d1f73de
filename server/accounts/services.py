"""Creating staff, TOTP enrolment, suspension: each change audited in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts import totp
from server.accounts.logins import Logins, StaffContext
from server.accounts.models import ApprovalStatus, DbsLevel, Role, Staff
from server.audit.log import Actor, AuditLog
from server.clock import Clock
from server.errors import Conflict, InvalidInput, NotFound
from server.events import Events, PersonSuspended
from server.keys import AppKeys
from server.subjects import Subject


@dataclass(frozen=True)
class NewStaff:
    name: str
    email: str
    roles: frozenset[Role]
    password: str | None = None
    dbs_level: DbsLevel | None = None
    dbs_checked_on: date | None = None
    safeguarding_training_on: date | None = None
    hcpc_number: str | None = None
    is_therapist: bool = False
    home_visits_opt_in: bool = False
    base_lat: float | None = None
    base_lon: float | None = None
    phone: str = ""
    vehicle: str = ""


class StaffService:
    def __init__(self, clock: Clock, audit: AuditLog, keys: AppKeys, logins: Logins,
                 events: Events | None = None) -> None:
        self._events = events or Events()
        self._clock = clock
        self._audit = audit
        self._keys = keys
        self._logins = logins

    async def create(self, session: AsyncSession, actor: Actor, new: NewStaff) -> Staff:
        """Add a member of staff.

        Raises:
            InvalidInput: no roles, or a therapist without an HCPC number.
            Conflict: the email is already used by another member of staff.
        """
        if not new.roles:
            raise InvalidInput("Give at least one role.", field="roles")
        if new.is_therapist and not (new.hcpc_number or "").strip():
            raise InvalidInput("A therapist needs their HCPC registration number.", field="hcpc_number")
        email = new.email.strip().lower()
        if await self.find_by_email(session, email) is not None:
            raise Conflict(f"A member of staff with the email {email} already exists.", field="email")
        password_hash = await self._logins.passwords.hash(new.password) if new.password else None
        staff = Staff(
            name=new.name.strip(), email=email, roles=" ".join(sorted(r.value for r in new.roles)),
            password_hash=password_hash,
            dbs_level=new.dbs_level.value if new.dbs_level else None, dbs_checked_on=new.dbs_checked_on,
            safeguarding_training_on=new.safeguarding_training_on, hcpc_number=new.hcpc_number,
            is_therapist=new.is_therapist, home_visits_opt_in=new.home_visits_opt_in,
            base_lat=new.base_lat, base_lon=new.base_lon, phone=new.phone.strip(), vehicle=new.vehicle.strip(),
            status=ApprovalStatus.APPROVED, created_at=self._clock.now(),
        )
        session.add(staff)
        await session.flush()
        await self._audit.record(session, actor, "staff.created", Subject.staff(staff.id),
                                 {"roles": staff.roles, "email": email})
        return staff

    @staticmethod
    async def everyone(session: AsyncSession) -> list[Staff]:
        return list((await session.execute(select(Staff).order_by(Staff.name))).scalars().all())

    async def find_by_email(self, session: AsyncSession, email: str) -> Staff | None:
        return (
            await session.execute(select(Staff).where(func.lower(Staff.email) == email.strip().lower()))
        ).scalar_one_or_none()

    async def get(self, session: AsyncSession, staff_id: int) -> Staff:
        staff = await session.get(Staff, staff_id)
        if staff is None:
            raise NotFound(f"There is no member of staff with id {staff_id}.")
        return staff

    async def set_password(self, session: AsyncSession, actor: Actor, staff: Staff, password: str) -> None:
        staff.password_hash = await self._logins.passwords.hash(password)
        await self._logins.end_all(session, staff.id)
        await self._logins.forgive(session, staff.email)
        await self._audit.record(session, actor, "staff.password_set", Subject.staff(staff.id))

    async def begin_totp(self, session: AsyncSession, ctx: StaffContext) -> str:
        """Store a new, not yet confirmed secret and return its provisioning URI for the app."""
        if ctx.staff.totp_enrolled_at is not None:
            raise Conflict("An authenticator app is already enrolled for this account.")
        secret = totp.new_secret()
        ctx.staff.totp_secret = totp.seal(self._keys, secret)
        await session.commit()
        return totp.provisioning_uri(secret, ctx.staff.email)

    async def confirm_totp(self, session: AsyncSession, ctx: StaffContext, code: str) -> None:
        if ctx.staff.totp_secret is None:
            raise InvalidInput("Start the enrolment first.")
        if ctx.staff.totp_enrolled_at is not None:
            raise Conflict("An authenticator app is already enrolled for this account.")
        secret = totp.unseal(self._keys, ctx.staff.totp_secret)
        step = totp.matching_step(secret, code, self._clock.now().timestamp())
        if step is None:
            raise InvalidInput("That code is not right. Enter the current 6-digit code from your app.", field="code")
        ctx.staff.totp_last_step = step  # the enrolment code cannot be replayed to finish a sign-in
        ctx.staff.totp_enrolled_at = self._clock.now()
        ctx.login.second_factor = True
        await self._audit.record(session, ctx.actor, "staff.totp_enrolled", Subject.staff(ctx.staff.id))
        await session.commit()

    async def enrol_totp_directly(self, session: AsyncSession, actor: Actor, staff: Staff) -> str:
        """For the CLI and the demo: enrol a fresh secret and return it (shown once to the operator)."""
        secret = totp.new_secret()
        staff.totp_secret = totp.seal(self._keys, secret)
        staff.totp_enrolled_at = self._clock.now()
        staff.totp_last_step = None
        await self._audit.record(session, actor, "staff.totp_enrolled", Subject.staff(staff.id))
        return secret

    async def suspend(self, session: AsyncSession, actor: Actor, staff: Staff, reason: str) -> None:
        """Suspend approval: every login session ends now and the change is audited with its reason."""
        if not reason.strip():
            raise InvalidInput("Say why the approval is suspended.", field="reason")
        if staff.suspended:
            raise Conflict(f"{staff.name} is already suspended.")
        actor_id = who.id if (who := Subject.parse(actor.ref)) is not None and who.is_staff else None
        if actor_id == staff.id:
            raise InvalidInput("You cannot suspend your own approval.")
        staff.status = ApprovalStatus.SUSPENDED
        staff.suspended_by_id = actor_id
        staff.suspended_at = self._clock.now()
        staff.suspended_reason = reason.strip()
        ended = await self._logins.end_all(session, staff.id, "Your approval has been suspended.")
        self._events.publish(session, PersonSuspended(Subject.staff(staff.id), "Your approval has been suspended."))
        await self._audit.record(session, actor, "staff.suspended", Subject.staff(staff.id),
                                 {"reason": reason.strip(), "sessions_ended": ended})

    async def reinstate(self, session: AsyncSession, actor: Actor, staff: Staff, reason: str) -> None:
        if not staff.suspended:
            raise Conflict(f"{staff.name} is not suspended.")
        staff.status = ApprovalStatus.APPROVED
        staff.suspended_by_id = None
        staff.suspended_at = None
        staff.suspended_reason = None
        await self._audit.record(session, actor, "staff.reinstated", Subject.staff(staff.id), {"reason": reason})
