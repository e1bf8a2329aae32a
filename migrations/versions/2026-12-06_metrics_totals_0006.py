"""Running totals behind the job metrics, the last runs of the reconciler and
housekeeping, an index on jobs.finished_at, and jobs.request_id (the request that
submitted the job, for its log lines)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 22:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column('jobs', sa.Column('request_id', sa.String(length=128), nullable=True))
    op.add_column('jobs', sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'job_totals',
        sa.Column('kind', sa.String(length=100), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('jobs', sa.BigInteger(), nullable=False),
        sa.Column('retries', sa.BigInteger(), nullable=False),
        sa.Column('started', sa.BigInteger(), nullable=False),
        sa.Column('wait_sum', sa.Float(), nullable=False),
        sa.Column('wait_buckets', postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column('run_sum', sa.Float(), nullable=False),
        sa.Column('run_buckets', postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'outcome', name=op.f('pk_job_totals')),
    )
    op.create_table(
        'metrics_rollup',
        sa.Column('id', sa.SmallInteger(), nullable=False),
        sa.Column('through', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('id = 1', name=op.f('ck_metrics_rollup_one_row')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_metrics_rollup')),
    )
    # Jobs are counted from here on: the counters start at zero, as counters do.
    op.execute("INSERT INTO metrics_rollup (id, through) VALUES (1, now())")
    op.create_table(
        'maintenance_runs',
        sa.Column('task', sa.String(length=32), nullable=False),
        sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ok', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('task', name=op.f('pk_maintenance_runs')),
    )
    op.create_table(
        'job_counters',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('total', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_job_counters')),
    )
    # Built without locking the jobs table against writes, however many rows it has.
    with op.get_context().autocommit_block():
        op.create_index(
            'ix_jobs_finished',
            'jobs',
            ['finished_at'],
            unique=False,
            postgresql_where=sa.text('finished_at IS NOT NULL'),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            'ix_jobs_finished',
            table_name='jobs',
            postgresql_where=sa.text('finished_at IS NOT NULL'),
            postgresql_concurrently=True,
            if_exists=True,
        )
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_table('job_counters')
    op.drop_table('maintenance_runs')
    op.drop_table('metrics_rollup')
    op.drop_table('job_totals')
    op.drop_column('jobs', 'queued_at')
    op.drop_column('jobs', 'request_id')
