"""Rolls known to this server, and the rolls assigned to a host for a lights-out install.

A roll's files live in the install tree under `rolls/<name>/<version>/<arch>/`; `source` says
where `rocks add roll` took it from (an ISO, a directory or a URL). A host's rolls are names
and versions, not references: a virtual frontend may be given a roll version that this server
serves from elsewhere or not at all.
"""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from provisioner.db.models.base import Base


class Roll(Base):
    __tablename__ = "rolls"
    __table_args__ = (UniqueConstraint("name", "version", "arch", "os"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    arch: Mapped[str] = mapped_column(String(32))
    os: Mapped[str] = mapped_column(String(32), default="linux")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str | None] = mapped_column(String(1024), nullable=True)


class HostRoll(Base):
    __tablename__ = "host_rolls"
    __table_args__ = (UniqueConstraint("host_id", "name", "version", "arch", "os"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    arch: Mapped[str] = mapped_column(String(32))
    os: Mapped[str] = mapped_column(String(32), default="linux")
