"""consent records (append-only history of recording consent) and recordings

Revision ID: 0004
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.base

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "consent_records",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("covers", sa.String(length=40), nullable=False),
        sa.Column("given_by", sa.String(length=40), nullable=False),
        sa.Column("capacity", sa.String(length=20), nullable=False),
        sa.Column("scope_record", sa.Boolean(), nullable=False),
        sa.Column("scope_safeguarding", sa.Boolean(), nullable=False),
        sa.Column("scope_feedback", sa.Boolean(), nullable=False),
        sa.Column("notice_version", sa.String(length=40), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("link_id", BIGID, nullable=True),
        sa.Column("entered_by_id", BIGID, nullable=True),
        sa.Column("paper_reference", sa.String(length=100), nullable=True),
        sa.Column("given_at", server.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", server.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("method IN ('online', 'paper')", name=op.f("ck_consent_records_method")),
        sa.CheckConstraint("capacity IN ('self_adult', 'guardian_pr', 'guardian_self')",
                           name=op.f("ck_consent_records_capacity")),
        sa.CheckConstraint("method <> 'paper' OR (entered_by_id IS NOT NULL AND paper_reference IS NOT NULL)",
                           name=op.f("ck_consent_records_paper_has_staff_and_reference")),
        sa.ForeignKeyConstraint(["link_id"], ["access_links.id"], name=op.f("fk_consent_records_link_id_access_links"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["entered_by_id"], ["staff.id"], name=op.f("fk_consent_records_entered_by_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_records")),
    )
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_records_covers"), ["covers"], unique=False)
        batch_op.create_index("ix_consent_records_pair", ["covers", "given_by", "id"], unique=False)
    op.create_table(
        "recordings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("booking_id", BIGID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=500), nullable=True),
        sa.Column("key_scheme", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.String(length=200), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("header", sa.LargeBinary(), nullable=False),
        sa.Column("store_key", sa.String(length=200), nullable=False),
        sa.Column("started_by", sa.String(length=40), nullable=False),
        sa.Column("started_at", server.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", server.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("erase_at", server.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('active', 'paused', 'stopped', 'interrupted')",
                           name=op.f("ck_recordings_status")),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"], name=op.f("fk_recordings_booking_id_bookings")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
    )
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recordings_booking_id"), ["booking_id"], unique=False)
        batch_op.create_index("uq_recordings_one_live", ["booking_id"], unique=True,
                              sqlite_where=sa.text("status IN ('active', 'paused')"),
                              postgresql_where=sa.text("status IN ('active', 'paused')"))


def downgrade() -> None:
    op.drop_table("recordings")
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_records_pair")
        batch_op.drop_index(batch_op.f("ix_consent_records_covers"))
    op.drop_table("consent_records")
