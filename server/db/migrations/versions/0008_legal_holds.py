"""legal holds: a hold on recordings needs no safeguarding concern (a claim, an inquiry, a court order)

Revision ID: 0008
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recording_holds") as batch:
        batch.alter_column("concern_id", existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                           nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("recording_holds") as batch:
        batch.alter_column("concern_id", existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                           nullable=False)
