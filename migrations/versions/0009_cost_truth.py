"""cost truth: token classes, and the tenant charged, on each attempt (issue 19)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 09:00:00.000000

Existing attempts get their job's tenant as it is now: the best the ledger knows about calls
made before the attempt recorded it itself. (The batch charged is the job's batch, which never
changes, so it is not copied.)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("attempts", sa.Column("cached_tokens", sa.Integer(), nullable=True))
    op.add_column("attempts", sa.Column("cache_write_tokens", sa.Integer(), nullable=True))
    op.add_column("attempts", sa.Column("reasoning_tokens", sa.Integer(), nullable=True))
    op.add_column("attempts", sa.Column("tenant", sa.String(length=100), nullable=True))
    op.execute(
        "UPDATE attempts SET tenant = (SELECT j.tenant FROM jobs j WHERE j.id = attempts.job_id)"
    )
    with op.batch_alter_table("attempts") as batch:
        batch.alter_column("tenant", existing_type=sa.String(length=100), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("tenant")
        batch.drop_column("reasoning_tokens")
        batch.drop_column("cache_write_tokens")
        batch.drop_column("cached_tokens")
