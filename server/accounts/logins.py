"""Staff login sessions: lockout after failed attempts, idle and absolute timeouts, logout everywhere.

Cookies carry a random token; only its SHA-256 is stored, so a database leak opens no session. Every
login issues a new token (no session fixation). A member of staff who has enrolled TOTP must give a code
before the session can act; the safeguarding role cannot act at all until enrolled (``require_staff``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts import totp
from server.accounts.models import LoginSession, Role, Staff
from server.accounts.passwords import verify_password
from server.audit.log import Actor, AuditLog
from server.clock import Clock
from server.config import Settings
from server.errors import Forbidden, InvalidInput, RateLimited, Unauthenticated
from server.events import Events, LoginsEnded
from server.keys import AppKeys, new_token, token_hash


@dataclass(frozen=True)
class LoginResult:
    token: str
    login: LoginSession
    staff: Staff

    @property
    def needs_second_factor(self) -> bool:
        return not self.login.second_factor and self.staff.totp_enrolled_at is not None


@dataclass(frozen=True)
class StaffContext:
    """Who is asking, resolved from the session cookie."""

    staff: Staff
    login: LoginSession

    @property
    def actor(self) -> Actor:
        return Actor(f"staff:{self.staff.id}", self.login.source)

    def has(self, role: Role) -> bool:
        return self.staff.has_role(role)


class Logins:
    def __init__(self, settings: Settings, clock: Clock, audit: AuditLog, keys: AppKeys,
                 events: Events | None = None) -> None:
        self._events = events or Events()  # sign-ins ended: open live sessions opened by them end too
        self._settings = settings
        self._clock = clock
        self._audit = audit
        self._keys = keys

    async def login(self, session: AsyncSession, email: str, password: str, source: str) -> LoginResult:
        """Check a password and open a new session.

        Raises:
            Unauthenticated: wrong email or password (the same words for both).
            RateLimited: too many failures; the account is locked for a while.
            Forbidden: the account is suspended.
        """
        now = self._clock.now()
        staff = (
            await session.execute(select(Staff).where(func.lower(Staff.email) == email.strip().lower()))
        ).scalar_one_or_none()
        if staff is not None and staff.locked_until is not None and staff.locked_until > now:
            minutes = max(1, int((staff.locked_until - now).total_seconds() // 60) + 1)
            raise RateLimited(
                f"Too many failed sign-in attempts. Try again in {minutes} minutes or ask an admin.",
                retry_after=minutes * 60,
            )
        if staff is None or not verify_password(staff.password_hash, password):
            if staff is not None:
                staff.failed_logins += 1
                if staff.failed_logins >= self._settings.login_max_failures:
                    staff.locked_until = now + timedelta(minutes=self._settings.login_lockout_minutes)
                    staff.failed_logins = 0
                    await self._audit.record(session, Actor("system", source), "staff.locked", f"staff:{staff.id}",
                                             {"minutes": self._settings.login_lockout_minutes})
                await session.commit()
            raise Unauthenticated("That email and password do not match an account.")
        if staff.suspended:
            raise Forbidden("This account is suspended. Contact your safeguarding lead.")
        staff.failed_logins = 0
        staff.locked_until = None
        token = new_token()
        login = LoginSession(
            token_hash=token_hash(token),
            staff_id=staff.id,
            csrf_token=secrets.token_urlsafe(24),
            second_factor=False,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=self._settings.session_absolute_hours),
            source=source[:100],
        )
        session.add(login)
        await self._audit.record(session, Actor(f"staff:{staff.id}", source), "staff.login", f"staff:{staff.id}")
        await session.commit()
        return LoginResult(token, login, staff)

    async def resolve(self, session: AsyncSession, token: str | None) -> StaffContext | None:
        """The live session behind a cookie, or None when absent, ended, idle too long or expired."""
        if not token:
            return None
        now = self._clock.now()
        row = (
            await session.execute(
                select(LoginSession, Staff)
                .join(Staff, Staff.id == LoginSession.staff_id)
                .where(LoginSession.token_hash == token_hash(token))
            )
        ).first()
        if row is None:
            return None
        login, staff = row
        idle = timedelta(minutes=self._settings.session_idle_minutes)
        if login.ended_at is not None or now >= login.expires_at or now - login.last_seen_at >= idle:
            return None
        if staff.suspended:
            return None
        if now - login.last_seen_at > timedelta(seconds=30):  # keep writes rare
            login.last_seen_at = now
            await session.commit()
        return StaffContext(staff, login)

    async def verify_second_factor(self, session: AsyncSession, ctx: StaffContext, code: str) -> None:
        if ctx.staff.totp_secret is None or ctx.staff.totp_enrolled_at is None:
            raise InvalidInput("This account has no authenticator app enrolled.")
        secret = totp.unseal(self._keys, ctx.staff.totp_secret)
        if not totp.code_is_valid(secret, code, self._clock.now().timestamp()):
            await self._audit.record(session, ctx.actor, "staff.totp_failed", f"staff:{ctx.staff.id}")
            await session.commit()
            raise Unauthenticated("That code is not right. Use the current 6-digit code from your app.")
        ctx.login.second_factor = True
        await self._audit.record(session, ctx.actor, "staff.totp_verified", f"staff:{ctx.staff.id}")
        await session.commit()

    async def logout(self, session: AsyncSession, ctx: StaffContext) -> None:
        ctx.login.ended_at = self._clock.now()
        await self._audit.record(session, ctx.actor, "staff.logout", f"staff:{ctx.staff.id}")
        await session.commit()

    async def end_all(self, session: AsyncSession, staff_id: int, reason: str = "You were signed out.") -> int:
        """End every open session of one member of staff (logout everywhere, suspension, a new password); a
        live session they joined through a sign-in ends once this commits."""
        result = await session.execute(
            update(LoginSession)
            .where(LoginSession.staff_id == staff_id, LoginSession.ended_at.is_(None))
            .values(ended_at=self._clock.now())
        )
        self._events.publish(session, LoginsEnded(staff_id, reason))
        return int(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE

    async def still_open(self, session: AsyncSession, login_id: int) -> bool:
        """Whether a sign-in is still good (not ended, expired, idle too long, or its staff suspended): the live
        session's periodic re-check."""
        row = (await session.execute(select(LoginSession, Staff).join(Staff, Staff.id == LoginSession.staff_id)
                                     .where(LoginSession.id == login_id))).first()
        if row is None:
            return False
        login, staff = row
        now = self._clock.now()
        idle = timedelta(minutes=self._settings.session_idle_minutes)
        return (login.ended_at is None and now < login.expires_at and now - login.last_seen_at < idle
                and not staff.suspended)


def require_staff(ctx: StaffContext | None, roles: frozenset[Role], *, enrolment: bool = False) -> StaffContext:
    """Deny by default: no session, a pending second factor, or none of ``roles`` is refused.

    Raises:
        Unauthenticated: not signed in, or the second factor is still owed.
        Forbidden: signed in without a role that may do this, or safeguarding without TOTP enrolled
            (only the enrolment routes, ``enrolment=True``, are open to them then).
    """
    if ctx is None:
        raise Unauthenticated("Sign in to continue.")
    if ctx.staff.totp_enrolled_at is not None and not ctx.login.second_factor:
        raise Unauthenticated("Enter the code from your authenticator app to finish signing in.",
                              next="second_factor")
    if not ctx.staff.role_set & roles:
        raise Forbidden("Your role does not allow this.")
    if not enrolment and ctx.has(Role.SAFEGUARDING) and ctx.staff.totp_enrolled_at is None:
        raise Forbidden("Safeguarding work needs a second factor: enrol an authenticator app first.",
                        next="enrol_totp")
    return ctx
