"""worker heartbeats: the workers table and jobs.worker_id (issue 20, item 11)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    op.create_index(op.f("ix_workers_last_heartbeat"), "workers", ["last_heartbeat"], unique=False)
    op.add_column("jobs", sa.Column("worker_id", sa.Uuid(), nullable=True))
    op.create_index("ix_jobs_worker_state", "jobs", ["worker_id", "state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_worker_state", table_name="jobs")
    op.drop_column("jobs", "worker_id")
    op.drop_index(op.f("ix_workers_last_heartbeat"), table_name="workers")
    op.drop_table("workers")
