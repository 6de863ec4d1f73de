"""blended plans (policies/000 provision type 4): a client's plan, its bookings and resources

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.base

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "blended_plans",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("client_id", ID, nullable=False),
        sa.Column("lead_practitioner_id", ID, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("goals", sa.Text(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_by_id", ID, nullable=True),
        sa.Column("created_at", server.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_by_id", ID, nullable=True),
        sa.Column("ended_at", server.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_reason", sa.String(length=500), nullable=True),
        sa.CheckConstraint("ends_on >= starts_on", name=op.f("ck_blended_plans_dates_in_order")),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_blended_plans_client_id_clients")),
        sa.ForeignKeyConstraint(["created_by_id"], ["staff.id"], name=op.f("fk_blended_plans_created_by_id_staff")),
        sa.ForeignKeyConstraint(["ended_by_id"], ["staff.id"], name=op.f("fk_blended_plans_ended_by_id_staff")),
        sa.ForeignKeyConstraint(["lead_practitioner_id"], ["staff.id"],
                                name=op.f("fk_blended_plans_lead_practitioner_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blended_plans")),
    )
    with op.batch_alter_table("blended_plans") as batch:
        batch.create_index(batch.f("ix_blended_plans_client_id"), ["client_id"], unique=False)
        batch.create_index(batch.f("ix_blended_plans_lead_practitioner_id"), ["lead_practitioner_id"], unique=False)

    op.create_table(
        "blended_plan_bookings",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("plan_id", ID, nullable=False),
        sa.Column("booking_id", ID, nullable=False),
        sa.Column("added_by_id", ID, nullable=True),
        sa.Column("added_at", server.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["added_by_id"], ["staff.id"], name=op.f("fk_blended_plan_bookings_added_by_id_staff")),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"],
                                name=op.f("fk_blended_plan_bookings_booking_id_bookings"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["plan_id"], ["blended_plans.id"],
                                name=op.f("fk_blended_plan_bookings_plan_id_blended_plans"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blended_plan_bookings")),
        # A booking belongs to one plan at most, also when two requests attach it at once.
        sa.UniqueConstraint("booking_id", name=op.f("uq_blended_plan_bookings_booking_id")),
    )
    with op.batch_alter_table("blended_plan_bookings") as batch:
        batch.create_index(batch.f("ix_blended_plan_bookings_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "blended_plan_resources",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("plan_id", ID, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("added_by_id", ID, nullable=True),
        sa.Column("added_at", server.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("url IS NOT NULL OR note IS NOT NULL", name=op.f("ck_blended_plan_resources_url_or_note")),
        sa.ForeignKeyConstraint(["added_by_id"], ["staff.id"],
                                name=op.f("fk_blended_plan_resources_added_by_id_staff")),
        sa.ForeignKeyConstraint(["plan_id"], ["blended_plans.id"],
                                name=op.f("fk_blended_plan_resources_plan_id_blended_plans"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blended_plan_resources")),
    )
    with op.batch_alter_table("blended_plan_resources") as batch:
        batch.create_index(batch.f("ix_blended_plan_resources_plan_id"), ["plan_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("blended_plan_resources") as batch:
        batch.drop_index(batch.f("ix_blended_plan_resources_plan_id"))
    op.drop_table("blended_plan_resources")
    with op.batch_alter_table("blended_plan_bookings") as batch:
        batch.drop_index(batch.f("ix_blended_plan_bookings_plan_id"))
    op.drop_table("blended_plan_bookings")
    with op.batch_alter_table("blended_plans") as batch:
        batch.drop_index(batch.f("ix_blended_plans_lead_practitioner_id"))
        batch.drop_index(batch.f("ix_blended_plans_client_id"))
    op.drop_table("blended_plans")
