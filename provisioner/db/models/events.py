"""What installing hosts tell us (install events) and the state of node discovery."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from provisioner.db.models.base import Base


class InstallEvent(Base):
    """One step of an install: `kickstart` (fetched), `pre`, `post`, `done`, `failed`,
    `discovered`, `partitions`... `detail` is a short JSON text from the node or the server."""

    __tablename__ = "install_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class Discovery(Base):
    """Node discovery (insert-ethers): while a row is enabled, unknown MACs seen by DHCP become
    hosts of `appliance_id` in `rack`, ranks counting up from `rank`."""

    __tablename__ = "discovery"

    id: Mapped[int] = mapped_column(primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    appliance_id: Mapped[int] = mapped_column(ForeignKey("appliances.id", ondelete="CASCADE"))
    rack: Mapped[int] = mapped_column(Integer, default=0)
    rank: Mapped[int | None] = mapped_column(Integer, default=None)
    started: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
