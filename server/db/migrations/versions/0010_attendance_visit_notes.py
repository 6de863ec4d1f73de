"""live-session attendance, the after-visit record, evening agreement on every booking

* ``session_attendance``: who joined a live session, first join, last join and last leave (policies/000_*
  "attendance records ... maintained accurately"), one row per booking and person.
* ``visit_records``: the practitioner's after-visit record (policies/002_* "after the visit"), one per visit,
  kept apart from the visit row that the administration team reads.
* ``bookings.evening_agreed_by_id/_at``: a manager's agreement to evening work (policies/000_*, 002_*, 003_*)
  now belongs to the booking, so that live sessions and visits share it; moved from ``visits``.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

import server.db.base

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = server.db.base.UTCDateTime(timezone=True)


@contextmanager
def foreign_keys_off() -> Iterator[None]:
    """SQLite alters a table by rebuilding it and dropping the old one. With foreign keys on (server/db/engine.py)
    that drop deletes the old rows first, cascading into every table that references them (``visits`` and
    ``booking_invitees`` from ``bookings``, ``visit_alerts`` from ``visits``): so off for the rebuild, and the
    result checked. PostgreSQL alters in place."""
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    with op.get_context().autocommit_block():  # the pragma is ignored inside a transaction
        op.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        with op.get_context().autocommit_block():
            op.execute("PRAGMA foreign_keys=ON")
    broken = op.get_bind().execute(sa.text("PRAGMA foreign_key_check")).fetchall()
    if broken:
        raise RuntimeError(f"foreign keys broken by the table rebuild: {broken[:5]}")


def upgrade() -> None:
    op.create_table(
        "session_attendance",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("booking_id", ID, nullable=False),
        sa.Column("subject", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("first_joined_at", WHEN, nullable=False),
        sa.Column("last_joined_at", WHEN, nullable=False),
        sa.Column("last_left_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"], ondelete="CASCADE",
                                name=op.f("fk_session_attendance_booking_id_bookings")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_attendance")),
        sa.UniqueConstraint("booking_id", "subject", name=op.f("uq_session_attendance_booking_id")),
    )
    op.create_table(
        "visit_records",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("visit_id", ID, nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("safeguarding_concerns", sa.Boolean(), nullable=False),
        sa.Column("recorded_by_id", ID, nullable=False),
        sa.Column("recorded_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["visit_id"], ["visits.id"], ondelete="CASCADE",
                                name=op.f("fk_visit_records_visit_id_visits")),
        sa.ForeignKeyConstraint(["recorded_by_id"], ["staff.id"], name=op.f("fk_visit_records_recorded_by_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_records")),
        sa.UniqueConstraint("visit_id", name=op.f("uq_visit_records_visit_id")),
    )
    with foreign_keys_off():
        _move_agreement_to_bookings()


def _move_agreement_to_bookings() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.add_column(sa.Column("evening_agreed_by_id", ID, nullable=True))
        batch.add_column(sa.Column("evening_agreed_at", WHEN, nullable=True))
        batch.create_foreign_key(op.f("fk_bookings_evening_agreed_by_id_staff"), "staff", ["evening_agreed_by_id"],
                                 ["id"])
    op.execute("UPDATE bookings SET evening_agreed_by_id = (SELECT v.evening_agreed_by_id FROM visits v "
               "WHERE v.booking_id = bookings.id), evening_agreed_at = (SELECT v.evening_agreed_at FROM visits v "
               "WHERE v.booking_id = bookings.id) WHERE id IN (SELECT booking_id FROM visits "
               "WHERE evening_agreed_by_id IS NOT NULL)")
    with op.batch_alter_table("visits") as batch:
        batch.drop_constraint("fk_visits_evening_agreed_by_id_staff", type_="foreignkey")
        batch.drop_column("evening_agreed_at")
        batch.drop_column("evening_agreed_by_id")


def downgrade() -> None:
    with foreign_keys_off():
        _move_agreement_to_visits()
    op.drop_table("visit_records")
    op.drop_table("session_attendance")


def _move_agreement_to_visits() -> None:
    with op.batch_alter_table("visits") as batch:
        batch.add_column(sa.Column("evening_agreed_by_id", ID, nullable=True))
        batch.add_column(sa.Column("evening_agreed_at", WHEN, nullable=True))
        batch.create_foreign_key("fk_visits_evening_agreed_by_id_staff", "staff", ["evening_agreed_by_id"], ["id"])
    op.execute("UPDATE visits SET evening_agreed_by_id = (SELECT b.evening_agreed_by_id FROM bookings b "
               "WHERE b.id = visits.booking_id), evening_agreed_at = (SELECT b.evening_agreed_at FROM bookings b "
               "WHERE b.id = visits.booking_id)")
    with op.batch_alter_table("bookings") as batch:
        batch.drop_constraint("fk_bookings_evening_agreed_by_id_staff", type_="foreignkey")
        batch.drop_column("evening_agreed_at")
        batch.drop_column("evening_agreed_by_id")
