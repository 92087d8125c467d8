"""Networks (Rocks "subnets") and host interfaces (Rocks "networks")."""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from provisioner.db.models.base import Base


class Subnet(Base):
    __tablename__ = "subnets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    subnet: Mapped[str] = mapped_column(String(64))
    netmask: Mapped[str] = mapped_column(String(64))
    mtu: Mapped[int] = mapped_column(Integer, default=1500)
    dnszone: Mapped[str] = mapped_column(String(128), default="")
    servedns: Mapped[bool] = mapped_column(Boolean, default=False)


class Interface(Base):
    """One network interface of a host. A MAC is unique in the cluster and an IP within its
    network; either may be unknown (NULL) until discovery or the installer reports it."""

    __tablename__ = "interfaces"
    __table_args__ = (
        UniqueConstraint("host_id", "device"),
        UniqueConstraint("subnet_id", "ip"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    device: Mapped[str] = mapped_column(String(32))
    mac: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    ip: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    subnet_id: Mapped[int | None] = mapped_column(
        ForeignKey("subnets.id", ondelete="RESTRICT"), default=None
    )
    vlan: Mapped[int | None] = mapped_column(Integer, default=None)
    module: Mapped[str | None] = mapped_column(String(64), default=None)
    name: Mapped[str | None] = mapped_column(String(128), default=None)
    options: Mapped[str | None] = mapped_column(String(256), default=None)

    subnet: Mapped[Subnet | None] = relationship()


class Alias(Base):
    """Another DNS name (CNAME) for a host, in the zone of its primary interface's network."""

    __tablename__ = "aliases"

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
