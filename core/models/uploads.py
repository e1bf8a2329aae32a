"""Uploaded files: the row that names an object in storage, always within one tenant."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, CreatedAt, new_id

TZDateTime = DateTime(timezone=True)


class UploadStatus:
    # A presigned upload not yet confirmed with `/complete`.
    PENDING = "pending"
    # The object is in storage; processing jobs may run.
    STORED = "stored"


class Upload(CreatedAt, Base):
    __tablename__ = "uploads"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'stored')", name="status"),
        CheckConstraint("size >= 0", name="size"),
        CheckConstraint("derived_bytes >= 0", name="derived_bytes"),
        # Listing: a tenant's uploads, newest first, with a stable tie-break for cursors.
        Index("ix_uploads_tenant_created", "tenant_id", text("created_at DESC"), text("id DESC")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The client's name for the file, for display only (sanitised); never a storage path.
    filename: Mapped[str] = mapped_column(String(255))
    # Sniffed from the bytes; what the client declared is kept apart and never trusted.
    content_type: Mapped[str] = mapped_column(String(100))
    declared_content_type: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    # Computed while streaming through the API; for direct uploads, by processing.
    sha256: Mapped[str | None] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(16))
    # What processing stored beside it (extracted text, a thumbnail): with `size`, what
    # the upload counts against its tenant's storage quota.
    derived_bytes: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # The latest processing job.
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    completed_at: Mapped[datetime | None] = mapped_column(TZDateTime)
