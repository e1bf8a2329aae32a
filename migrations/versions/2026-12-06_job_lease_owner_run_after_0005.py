"""jobs.lease_owner (which worker process holds the lease) and jobs.run_after (a retry
waits in PostgreSQL until then, instead of as a broker countdown)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 20:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Fail fast instead of queueing behind a long transaction and blocking every
    # query that then queues behind this migration.
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column('jobs', sa.Column('lease_owner', sa.String(length=255), nullable=True))
    op.add_column('jobs', sa.Column('run_after', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_column('jobs', 'run_after')
    op.drop_column('jobs', 'lease_owner')
