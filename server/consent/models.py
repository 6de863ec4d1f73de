"""Consent records: append-only, so the history of who agreed to what, and when, is never overwritten.

A grant, a change of scopes and a withdrawal are each a new row. The consent in force for a pair
(whose image/voice it covers, who gave it) is the latest row for that pair; a withdrawal row has no scopes.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, intpk


class Capacity(enum.StrEnum):
    SELF_ADULT = "self_adult"  # an adult client for themselves
    GUARDIAN_PR = "guardian_pr"  # a guardian with parental responsibility for a client under 18
    GUARDIAN_SELF = "guardian_self"  # a guardian for their own image and voice


class Method(enum.StrEnum):
    ONLINE = "online"  # through a signed consent link
    PAPER = "paper"  # a paper form entered by staff, with its reference


class ConsentRecord(Base):
    __tablename__ = "consent_records"
    __table_args__ = (
        CheckConstraint("method IN ('online', 'paper')", name="method"),
        CheckConstraint("capacity IN ('self_adult', 'guardian_pr', 'guardian_self')", name="capacity"),
        CheckConstraint("method <> 'paper' OR (entered_by_id IS NOT NULL AND paper_reference IS NOT NULL)",
                        name="paper_has_staff_and_reference"),
        Index("ix_consent_records_pair", "covers", "given_by", "id"),
    )

    id: Mapped[intpk]
    covers: Mapped[str] = mapped_column(String(40), index=True)  # "client:4" or "guardian:3"
    given_by: Mapped[str] = mapped_column(String(40))  # "client:4" or "guardian:3"
    capacity: Mapped[str] = mapped_column(String(20))
    scope_record: Mapped[bool] = mapped_column(Boolean, default=False)
    scope_safeguarding: Mapped[bool] = mapped_column(Boolean, default=False)
    scope_feedback: Mapped[bool] = mapped_column(Boolean, default=False)
    notice_version: Mapped[str] = mapped_column(String(40))
    method: Mapped[str] = mapped_column(String(10))
    link_id: Mapped[int | None] = mapped_column(ForeignKey("access_links.id", ondelete="SET NULL"))
    entered_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    paper_reference: Mapped[str | None] = mapped_column(String(100))
    given_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]  # set on the withdrawal row itself; earlier rows are never touched

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(name for name, held in (("record", self.scope_record),
                                                 ("safeguarding", self.scope_safeguarding),
                                                 ("feedback", self.scope_feedback)) if held)

    @property
    def in_force(self) -> bool:
        return self.withdrawn_at is None and bool(self.scopes)
