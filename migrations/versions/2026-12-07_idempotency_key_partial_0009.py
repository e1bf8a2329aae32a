"""The Idempotency-Key's unique index holds only jobs submitted with a key

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 17:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = 'uq_jobs_tenant_idempotency_key'
CONSTRAINT = 'uq_jobs_tenant_id_idempotency_key'


def upgrade() -> None:
    # Written to be run again after a failure part-way: each step is skipped or redone.
    with op.get_context().autocommit_block():
        # Built beside the old constraint, which keeps the keys unique meanwhile,
        # without locking the jobs table against writes; one a failed run left behind
        # (invalid) is built again.
        op.drop_index(INDEX, table_name='jobs', postgresql_concurrently=True, if_exists=True)
        op.create_index(
            INDEX,
            'jobs',
            ['tenant_id', 'idempotency_key'],
            unique=True,
            postgresql_where=sa.text('idempotency_key IS NOT NULL'),
            postgresql_concurrently=True,
        )
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute(f'ALTER TABLE jobs DROP CONSTRAINT IF EXISTS {CONSTRAINT}')


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute(f'ALTER TABLE jobs ADD CONSTRAINT {CONSTRAINT} UNIQUE (tenant_id, idempotency_key)')
    op.drop_index(INDEX, table_name='jobs')
