"""Staff login sessions: attempt limits, idle and absolute timeouts, logout everywhere, the second factor.

Cookies carry a random token; only its SHA-256 is stored, so a database leak opens no session. Every
login issues a new token (no session fixation). A member of staff who has enrolled TOTP must give a code
before the session can act; the safeguarding role cannot act at all until enrolled (``require_staff``).

Sign-in attempts are limited per address, per account and address, and per account (``throttle``): five
wrong passwords from one place lock that place out of that account, not the real user everywhere. An
unknown email is treated exactly like a wrong password for a real one: the same argon2 work (the dummy
hash), the same answers, the same limits and 429s. Second-factor codes are limited per login session
(which then ends) and per account, and each code is accepted once.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts import throttle, totp
from server.accounts.models import LoginSession, Role, Staff
from server.accounts.passwords import Passwords
from server.accounts.throttle import Limit, Refused
from server.audit.log import Actor, AuditLog
from server.clock import Clock
from server.config import Settings
from server.errors import Forbidden, InvalidInput, RateLimited, Unauthenticated, Unavailable
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


def address_of(source: str) -> str:
    """The address a limit counts: IPv4 as is, IPv6 by its /64 (one household or host has a whole /64)."""
    try:
        ip = ipaddress.ip_address(source)
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return f"{ipaddress.ip_network(f'{ip}/64', strict=False).network_address}/64"
    return str(ip)


def _minutes(wait: timedelta) -> int:
    return max(1, math.ceil(wait.total_seconds() / 60))


class Logins:
    def __init__(self, settings: Settings, clock: Clock, audit: AuditLog, keys: AppKeys,
                 passwords: Passwords | None = None, events: Events | None = None) -> None:
        self._events = events or Events()  # sign-ins ended: open live sessions opened by them end too
        self._settings = settings
        self._clock = clock
        self._audit = audit
        self._keys = keys
        self.passwords = passwords or Passwords(settings.password_workers)
        self._throttle_key = keys.derive("login-throttle")

    def _hashed(self, *parts: str) -> str:
        """Emails in throttle keys are keyed hashes: the table names nobody, known or unknown."""
        return hmac.new(self._throttle_key, "\x00".join(parts).encode("utf-8", "surrogateescape"),
                        hashlib.sha256).hexdigest()[:40]

    def _password_limits(self, email: str, address: str) -> tuple[Limit, Limit, Limit]:
        s, window = self._settings, timedelta(minutes=self._settings.login_lockout_minutes)
        return (
            Limit(f"pw-addr:{address}"[:100], s.login_address_max_failures, window),
            Limit(f"pw-acct-addr:{self._hashed(email, address)}", s.login_max_failures, window),
            Limit(f"pw-acct:{self._hashed(email)}", s.login_account_max_failures, window),
        )

    def _longest_window(self) -> timedelta:
        s = self._settings
        return max(timedelta(minutes=s.login_lockout_minutes), timedelta(minutes=s.totp_lockout_minutes),
                   timedelta(hours=s.session_absolute_hours))

    async def login(self, session: AsyncSession, email: str, password: str, source: str) -> LoginResult:
        """Check a password and open a new session.

        Raises:
            Unauthenticated: wrong email or password (the same words, and the same work, for both).
            RateLimited: too many failures from this address, or for this email (known or not).
            Unavailable: too many sign-ins are waiting for a password check.
            Forbidden: the account is suspended.
        """
        now = self._clock.now()
        email = email.strip().lower()
        address = address_of(source)
        limits = self._password_limits(email, address)
        staff = (await session.execute(select(Staff).where(func.lower(Staff.email) == email))).scalar_one_or_none()
        stored = staff.password_hash if staff is not None else None  # None: the dummy hash is checked instead
        taken = await throttle.reserve(session, limits, now)
        await throttle.prune(session, now, self._longest_window())
        await session.commit()  # the reservation is seen by every other attempt before this check runs
        if isinstance(taken, Refused):
            raise self._refusal(taken)
        try:
            right = await self.passwords.verify(stored, password)
        except Unavailable:
            await throttle.give_back(session, limits)
            await session.commit()
            raise
        if not right or staff is None:
            for limit in taken.filled:
                await self._record_lock(session, staff, limit, address, source)
            await session.commit()
            raise Unauthenticated("That email and password do not match an account.")
        await throttle.give_back(session, limits[:1])
        await throttle.clear(session, limits[1:])
        if staff.suspended:
            await session.commit()
            raise Forbidden("This account is suspended. Contact your safeguarding lead.")
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

    def _refusal(self, refused: Refused) -> RateLimited:
        minutes = _minutes(refused.retry_after)
        if refused.limit.key.startswith("pw-addr:"):
            return RateLimited(f"Too many failed sign-in attempts from your network. Try again in {minutes} "
                               "minutes.", retry_after=minutes * 60)
        return RateLimited(f"Too many failed sign-in attempts. Try again in {minutes} minutes.",
                           retry_after=minutes * 60)

    async def forgive(self, session: AsyncSession, email: str) -> None:
        """Lift the account-wide lock, when the password is set anew (the way back of a locked-out user: the
        office's reset email, issue 15). Locks of other addresses stay: they were not the user's."""
        await throttle.clear(session, self._password_limits(email.strip().lower(), "unknown")[2:])

    async def _record_lock(self, session: AsyncSession, staff: Staff | None, limit: Limit, address: str,
                           source: str) -> None:
        """Audit the failure that used a limit's last place: the same one write for known and unknown emails."""
        scope = limit.key.split(":", 1)[0].removeprefix("pw-")
        details = {"scope": scope, "address": address, "minutes": self._settings.login_lockout_minutes}
        if staff is not None and scope != "addr":
            await self._audit.record(session, Actor("system", source), "staff.locked", f"staff:{staff.id}", details)
        else:
            await self._audit.record(session, Actor("system", source), "signin.locked", f"address:{address}",
                                     details | {"account": "known" if staff is not None else "unknown"})

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
        """Finish signing in with a TOTP code; each code works once, and wrong ones are limited.

        Raises:
            InvalidInput: no authenticator app is enrolled.
            Unauthenticated: a wrong or reused code; after ``totp_max_failures`` the login itself ends.
            RateLimited: too many wrong codes for this account, from any login, in ``totp_lockout_minutes``.
        """
        if ctx.staff.totp_secret is None or ctx.staff.totp_enrolled_at is None:
            raise InvalidInput("This account has no authenticator app enrolled.")
        if ctx.login.second_factor:
            return
        s, now = self._settings, self._clock.now()
        per_login = Limit(f"totp-login:{ctx.login.id}", s.totp_max_failures, timedelta(hours=s.session_absolute_hours))
        per_staff = Limit(f"totp-staff:{ctx.staff.id}", s.totp_account_max_failures,
                          timedelta(minutes=s.totp_lockout_minutes))
        # The rows stay locked until the commit below, so codes for one account are checked one at a time.
        taken = await throttle.reserve(session, (per_login, per_staff), now)
        if isinstance(taken, Refused):
            if taken.limit is per_login:
                await self._end_for_codes(session, ctx)
                raise Unauthenticated("Too many wrong codes: sign in again.")
            await session.commit()
            minutes = _minutes(taken.retry_after)
            raise RateLimited(f"Too many wrong codes for this account. Try again in {minutes} minutes.",
                              retry_after=minutes * 60)
        step = totp.matching_step(totp.unseal(self._keys, ctx.staff.totp_secret), code, now.timestamp())
        used = step is not None and await self._use_step(session, ctx.staff, step)
        if not used:
            await self._audit.record(session, ctx.actor, "staff.totp_failed", f"staff:{ctx.staff.id}",
                                     {"reason": "wrong" if step is None else "reused"})
            if per_staff in taken.filled:
                await self._audit.record(session, Actor("system", ctx.login.source), "staff.totp_locked",
                                         f"staff:{ctx.staff.id}", {"minutes": s.totp_lockout_minutes})
            if per_login in taken.filled:
                await self._end_for_codes(session, ctx)
                raise Unauthenticated("That code is not right, and that was the last try: sign in again.")
            await session.commit()
            if step is not None:
                raise Unauthenticated("That code has been used already. Wait for the next code in your app.")
            raise Unauthenticated("That code is not right. Use the current 6-digit code from your app.")
        await throttle.clear(session, (per_login, per_staff))
        ctx.login.second_factor = True
        await self._audit.record(session, ctx.actor, "staff.totp_verified", f"staff:{ctx.staff.id}")
        await session.commit()

    async def _use_step(self, session: AsyncSession, staff: Staff, step: int) -> bool:
        """Record ``step`` as the last accepted one, unless it (or a later one) was accepted already."""
        result = await session.execute(
            update(Staff).where(Staff.id == staff.id,
                                or_(Staff.totp_last_step.is_(None), Staff.totp_last_step < step))
            .values(totp_last_step=step).execution_options(synchronize_session=False))
        if int(result.rowcount) != 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
            return False
        staff.totp_last_step = step
        return True

    async def _end_for_codes(self, session: AsyncSession, ctx: StaffContext) -> None:
        """End the login (once: concurrent refusals see it already ended) and commit."""
        now = self._clock.now()
        ended = await session.execute(
            update(LoginSession).where(LoginSession.id == ctx.login.id, LoginSession.ended_at.is_(None))
            .values(ended_at=now).execution_options(synchronize_session=False))
        ctx.login.ended_at = now
        if int(ended.rowcount) == 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
            await self._audit.record(session, Actor("system", ctx.login.source), "staff.totp_login_ended",
                                     f"staff:{ctx.staff.id}", {"max_failures": self._settings.totp_max_failures})
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
