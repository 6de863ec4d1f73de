"""Staff records, login sessions and roles."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Boolean, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.dates import add_years
from server.db.base import Base, intpk


class Role(enum.StrEnum):
    PRACTITIONER = "practitioner"
    ADMIN = "admin"
    MANAGER = "manager"
    SAFEGUARDING = "safeguarding"
    # The head of the service (policies/003_* "the headteacher will be notified"): the overdue check-out
    # escalation reaches them with the safeguarding leads. It grants no reading of concerns or recordings.
    HEAD_OF_SERVICE = "head_of_service"


# The office: who sees every client, booking and consent (not only the ones they work with).
OFFICE = frozenset({Role.ADMIN, Role.MANAGER, Role.SAFEGUARDING})


class DbsLevel(enum.StrEnum):
    """Disclosure and Barring Service check levels (policies/003_*: appropriate DBS before assignment)."""

    BASIC = "basic"
    STANDARD = "standard"
    ENHANCED = "enhanced"
    ENHANCED_BARRED = "enhanced_barred"


class ApprovalStatus(enum.StrEnum):
    APPROVED = "approved"
    SUSPENDED = "suspended"


class Staff(Base):
    """A member of staff. Roles are a space-separated set of ``Role`` values."""

    __tablename__ = "staff"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    roles: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    totp_secret: Mapped[str | None] = mapped_column(String(200))  # sealed with the app secret
    totp_enrolled_at: Mapped[datetime | None]
    dbs_level: Mapped[str | None] = mapped_column(String(20))
    dbs_checked_on: Mapped[date | None]
    safeguarding_training_on: Mapped[date | None]
    hcpc_number: Mapped[str | None] = mapped_column(String(20))
    is_therapist: Mapped[bool] = mapped_column(Boolean, default=False)
    home_visits_opt_in: Mapped[bool] = mapped_column(Boolean, default=False)
    base_lat: Mapped[float | None] = mapped_column(Float)
    base_lon: Mapped[float | None] = mapped_column(Float)
    # policies/003_*: the office holds these, for when a lone worker cannot be reached
    phone: Mapped[str] = mapped_column(String(40), default="", server_default="")
    vehicle: Mapped[str] = mapped_column(String(200), default="", server_default="")  # make, colour, registration
    recording_agreement_on: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(20), default=ApprovalStatus.APPROVED)
    suspended_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    suspended_at: Mapped[datetime | None]
    suspended_reason: Mapped[str | None] = mapped_column(String(2000))
    # The TOTP time step (unix time // 30) of the last code accepted: a code is good once (RFC 6238 5.2).
    totp_last_step: Mapped[int | None]
    created_at: Mapped[datetime]

    @property
    def role_set(self) -> frozenset[Role]:
        return frozenset(Role(r) for r in self.roles.split())

    def has_role(self, role: Role) -> bool:
        return role in self.role_set

    @property
    def suspended(self) -> bool:
        return self.status == ApprovalStatus.SUSPENDED

    @property
    def safeguarding_training_due_on(self) -> date | None:
        """Safeguarding training is refreshed every three years (policies/003_*)."""
        if self.safeguarding_training_on is None:
            return None
        return add_years(self.safeguarding_training_on, TRAINING_VALID_YEARS)


TRAINING_VALID_YEARS = 3


class LoginSession(Base):
    """A staff login. Only the SHA-256 of the cookie value is stored."""

    __tablename__ = "login_sessions"

    id: Mapped[intpk]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    second_factor: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(100), default="")


class LoginThrottle(Base):
    """Attempts in one window under one limit (``server.accounts.throttle``), shared by every node.

    ``key`` names the limit and whom it counts: ``pw-addr:<address>``, ``pw-acct:<hmac of email>``,
    ``pw-acct-addr:<hmac of email and address>``, ``totp-login:<login id>``, ``totp-staff:<staff id>``.
    Emails are stored only as keyed hashes, so the table names nobody (and unknown emails look the same).
    """

    __tablename__ = "login_throttles"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    attempts: Mapped[int]
    window_started_at: Mapped[datetime] = mapped_column(index=True)
