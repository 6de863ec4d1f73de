"""sign-in hardening and a keyed audit chain (issue 14): attempt limits, the last TOTP step, keyed_from

login_throttles counts sign-in and second-factor attempts per limit, shared by every node (it replaces
staff.failed_logins and staff.locked_until, which locked an account for everyone). staff.totp_last_step
stops a code from being used twice. audit_head.keyed_from marks the first event hashed with the key; an
existing chain stays as it is and is sealed by that event. The head row is created here, so the first two
events of a new installation cannot both try to create it.

Revision ID: 0014_signin
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.base

revision: str = "0014_signin"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("attempts", ID, nullable=False),
        sa.Column("window_started_at", server.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttles")),
    )
    op.create_index("ix_login_throttles_window_started_at", "login_throttles", ["window_started_at"])
    op.add_column("staff", sa.Column("totp_last_step", ID, nullable=True))
    # Native DROP COLUMN (SQLite 3.35+): a batch copy of staff would trip the foreign keys that point at it.
    op.drop_column("staff", "failed_logins")
    op.drop_column("staff", "locked_until")
    op.add_column("audit_head", sa.Column("keyed_from", ID, nullable=True))
    op.execute("INSERT INTO audit_head (id, seq, last_hash) SELECT 1, 0, '" + "0" * 64 + "' "
               "WHERE NOT EXISTS (SELECT 1 FROM audit_head WHERE id = 1)")


def downgrade() -> None:
    op.execute("DELETE FROM audit_head WHERE id = 1 AND seq = 0")
    op.drop_column("audit_head", "keyed_from")
    op.add_column("staff", sa.Column("locked_until", server.db.base.UTCDateTime(timezone=True), nullable=True))
    op.add_column("staff", sa.Column("failed_logins", ID, nullable=False, server_default="0"))
    op.drop_column("staff", "totp_last_step")
    op.drop_index("ix_login_throttles_window_started_at", table_name="login_throttles")
    op.drop_table("login_throttles")
