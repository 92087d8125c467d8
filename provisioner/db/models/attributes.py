"""Attributes at the four stored levels: global, OS, appliance and host (intrinsic ones are
computed). Resolution order and SOURCE letters live in `services.attrs`."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from provisioner.db.models.base import Base


class GlobalAttribute(Base):
    __tablename__ = "global_attributes"

    id: Mapped[int] = mapped_column(primary_key=True)
    attr: Mapped[str] = mapped_column(String(128), unique=True)
    value: Mapped[str] = mapped_column(Text, default="")


class OSAttribute(Base):
    __tablename__ = "os_attributes"
    __table_args__ = (UniqueConstraint("os", "attr"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    os: Mapped[str] = mapped_column(String(32))
    attr: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(Text, default="")


class ApplianceAttribute(Base):
    __tablename__ = "appliance_attributes"
    __table_args__ = (UniqueConstraint("appliance_id", "attr"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appliance_id: Mapped[int] = mapped_column(ForeignKey("appliances.id", ondelete="CASCADE"))
    attr: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(Text, default="")


class HostAttribute(Base):
    __tablename__ = "host_attributes"
    __table_args__ = (UniqueConstraint("host_id", "attr"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    attr: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(Text, default="")
