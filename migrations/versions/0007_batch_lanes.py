"""provider batch lanes: deadlines, provider_batches, their items, the lane of an attempt (issue 18)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
MONEY = sa.Numeric(18, 8)


def upgrade() -> None:
    op.add_column("batches", sa.Column("deadline", TS, nullable=True))
    op.add_column("jobs", sa.Column("deadline", TS, nullable=True))
    op.add_column("attempts", sa.Column("lane", sa.String(length=8), nullable=True))
    op.add_column("attempts", sa.Column("provider_batch_id", sa.String(length=200), nullable=True))
    op.add_column("attempts", sa.Column("sync_cost_usd", MONEY, nullable=True))
    op.create_table(
        "provider_batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("deployment", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("provider_status", sa.String(length=40), nullable=True),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("submitted_at", TS, nullable=True),
        sa.Column("polled_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_batches")),
    )
    op.create_index(
        "ix_provider_batches_state", "provider_batches", ["state", "deployment"], unique=False
    )
    op.create_table(
        "provider_batch_items",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("attempt_no", sa.SmallInteger(), nullable=False),
        sa.Column("deployment", sa.String(length=200), nullable=False),
        sa.Column("provider_batch", sa.Uuid(), nullable=True),
        sa.Column("custom_id", sa.String(length=64), nullable=False),
        sa.Column("deadline", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_provider_batch_items_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["provider_batch"],
            ["provider_batches.id"],
            name=op.f("fk_provider_batch_items_provider_batch_provider_batches"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("job_id", "attempt_no", name=op.f("pk_provider_batch_items")),
    )
    op.create_index(
        "ix_provider_batch_items_pending",
        "provider_batch_items",
        ["deployment", "provider_batch"],
        unique=False,
    )
    op.create_index(
        "ix_provider_batch_items_batch", "provider_batch_items", ["provider_batch"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_provider_batch_items_batch", table_name="provider_batch_items")
    op.drop_index("ix_provider_batch_items_pending", table_name="provider_batch_items")
    op.drop_table("provider_batch_items")
    op.drop_index("ix_provider_batches_state", table_name="provider_batches")
    op.drop_table("provider_batches")
    op.drop_column("attempts", "sync_cost_usd")
    op.drop_column("attempts", "provider_batch_id")
    op.drop_column("attempts", "lane")
    op.drop_column("jobs", "deadline")
    op.drop_column("batches", "deadline")
