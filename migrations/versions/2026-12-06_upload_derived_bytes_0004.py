"""storage quotas: uploads.derived_bytes (what processing stored beside each upload) and
tenants.storage_quota_bytes (a tenant's own quota)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 18:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Fail fast instead of queueing behind a long transaction and blocking every
    # query that then queues behind this migration.
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column(
        'uploads',
        sa.Column('derived_bytes', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    )
    op.create_check_constraint(op.f('ck_uploads_derived_bytes'), 'uploads', 'derived_bytes >= 0')
    op.add_column('tenants', sa.Column('storage_quota_bytes', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_column('tenants', 'storage_quota_bytes')
    op.drop_constraint(op.f('ck_uploads_derived_bytes'), 'uploads', type_='check')
    op.drop_column('uploads', 'derived_bytes')
