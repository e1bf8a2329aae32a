"""Fair dispatch: jobs.dispatched_at (the job holds one of its tenant's slots in its
queue), tenants.max_concurrency (a tenant's own cap), and the indexes of each
tenant's line of waiting jobs and of the slots it holds

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 01:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = "status = 'queued' AND dispatched_at IS NULL"
HOLDING = "status = 'running' OR (status = 'queued' AND dispatched_at IS NOT NULL)"


def upgrade() -> None:
    # Written to be run again after a failure part-way: each step is skipped or redone.
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("ALTER TABLE jobs ADD COLUMN IF NOT EXISTS dispatched_at timestamptz")
    op.execute(
        "ALTER TABLE tenants ADD COLUMN IF NOT EXISTS max_concurrency integer"
        " CONSTRAINT ck_tenants_max_concurrency CHECK (max_concurrency >= 0)"
    )
    with op.get_context().autocommit_block():
        # Committed apart from the columns, so the table is locked only for adding them.
        # Every job published before this holds a slot: it runs, or its message is on
        # its way (or is re-sent by the reconciler). Delayed ones wait for their time.
        op.execute(
            "UPDATE jobs SET dispatched_at = coalesce(enqueued_at, created_at)"
            " WHERE dispatched_at IS NULL AND (status = 'running'"
            " OR (status = 'queued' AND (run_after IS NULL OR run_after <= now())))"
        )
        # Built without locking the jobs table against writes, however many rows it
        # has; one a failed run left behind (invalid) is built again.
        for name, columns, where in (
            ('ix_jobs_waiting', ['tenant_id', 'queue', 'queued_at'], WAITING),
            ('ix_jobs_holding', ['tenant_id', 'queue'], HOLDING),
        ):
            op.drop_index(name, table_name='jobs', postgresql_concurrently=True, if_exists=True)
            op.create_index(
                name,
                'jobs',
                columns,
                postgresql_where=sa.text(where),
                postgresql_concurrently=True,
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in ('ix_jobs_holding', 'ix_jobs_waiting'):
            op.drop_index(name, table_name='jobs', postgresql_concurrently=True, if_exists=True)
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_constraint(op.f('ck_tenants_max_concurrency'), 'tenants', type_='check')
    op.drop_column('tenants', 'max_concurrency')
    op.drop_column('jobs', 'dispatched_at')
