"""dashboard (issue 22): admin API keys and the indexes its pages read by

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:00:00.000000

- `api_keys.is_admin`: a key made with `llmq keys create --admin` sees every tenant.
- `ix_attempts_started_at_brin`: the spend chart and the providers page read attempts by
  start time (days, the last hour). Attempts are appended in start order, so a BRIN index
  finds a time range for a few kilobytes in all, where a b-tree would add ~20 B to every row.
- `ix_batches_created_at` and `ix_batches_tenant_created`: the batch list, newest first,
  for all tenants (admin) or one.
- `ix_jobs_tenant`: spend filtered by tenant joins attempts to that tenant's jobs.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index(
        "ix_attempts_started_at_brin",
        "attempts",
        ["started_at"],
        unique=False,
        postgresql_using="brin",
        # autovacuum summarizes each block range as soon as it fills: an unsummarized range
        # always matches, so without it a range query would read the whole tail
        postgresql_with={"autosummarize": "on"},
    )
    op.create_index("ix_batches_created_at", "batches", ["created_at"], unique=False)
    op.create_index("ix_batches_tenant_created", "batches", ["tenant", "created_at"], unique=False)
    op.create_index("ix_jobs_tenant", "jobs", ["tenant"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_tenant", table_name="jobs")
    op.drop_index("ix_batches_tenant_created", table_name="batches")
    op.drop_index("ix_batches_created_at", table_name="batches")
    op.drop_index("ix_attempts_started_at_brin", table_name="attempts")
    op.drop_column("api_keys", "is_admin")
