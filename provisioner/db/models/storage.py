"""Partitions as installed hosts report them (the Rocks columns, strings as parted prints them)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from provisioner.db.models.base import Base


class Partition(Base):
    __tablename__ = "partitions"
    __table_args__ = (UniqueConstraint("host_id", "device"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    device: Mapped[str] = mapped_column(String(128))
    mountpoint: Mapped[str] = mapped_column(String(128), default="")
    sectorstart: Mapped[str] = mapped_column(String(128), default="")
    partitionsize: Mapped[str] = mapped_column(String(128), default="")
    partitionid: Mapped[str] = mapped_column(String(128), default="")
    fstype: Mapped[str] = mapped_column(String(128), default="")
    partitionflags: Mapped[str] = mapped_column(String(128), default="")
    formatflags: Mapped[str] = mapped_column(String(128), default="")
