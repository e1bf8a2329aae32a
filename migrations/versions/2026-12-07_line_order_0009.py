"""Each tenant's line of waiting jobs indexed in the order it is dispatched
(queued_at, then created_at), so a dispatch reads the jobs it gives slots to, not the
whole line

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 19:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = "status = 'queued' AND dispatched_at IS NULL"


def _replace(old: str, new: str, columns: list[str]) -> None:
    # Built without locking the jobs table against writes, however many rows it has.
    # The new index is built before the old one goes, so a line is never read without
    # one; a run that failed part-way leaves a valid new index as it is, and an invalid
    # one (a failed build) is built again.
    with op.get_context().autocommit_block():
        valid = op.get_bind().execute(
            sa.text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"),
            {"name": new},
        ).scalar()
        if valid is False:
            op.drop_index(new, table_name='jobs', postgresql_concurrently=True)
        if not valid:
            op.create_index(
                new,
                'jobs',
                columns,
                postgresql_where=sa.text(WAITING),
                postgresql_concurrently=True,
            )
        op.drop_index(old, table_name='jobs', postgresql_concurrently=True, if_exists=True)


def upgrade() -> None:
    _replace('ix_jobs_waiting', 'ix_jobs_line', ['tenant_id', 'queue', 'queued_at', 'created_at'])


def downgrade() -> None:
    _replace('ix_jobs_line', 'ix_jobs_waiting', ['tenant_id', 'queue', 'queued_at'])
