"""Hosts, and the appliances and memberships that say what kind of machine each one is."""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from provisioner.db.models.base import Base


class Appliance(Base):
    """A kind of machine (compute, nas, frontend...). `node` is the root of its traversal of the
    node graph; an appliance without one is not installed by us (switches, power units)."""

    __tablename__ = "appliances"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    graph: Mapped[str] = mapped_column(String(64), default="default")
    node: Mapped[str] = mapped_column(String(64), default="")
    roll: Mapped[str] = mapped_column(String(64), default="base")

    memberships: Mapped[list[Membership]] = relationship(back_populates="appliance")


class Membership(Base):
    """The name people use for an appliance ("Compute", "NAS Appliance"). `public` memberships
    are the ones offered for node discovery."""

    __tablename__ = "memberships"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    appliance_id: Mapped[int] = mapped_column(ForeignKey("appliances.id", ondelete="CASCADE"))
    distribution: Mapped[str] = mapped_column(String(64), default="rocks-dist")
    public: Mapped[bool] = mapped_column(Boolean, default=False)

    appliance: Mapped[Appliance] = relationship(back_populates="memberships")


class Host(Base):
    """A machine of the cluster, physical or virtual. `boot_action` is what it does on its next
    network boot (install, os, run; NULL: no boot config at all); `installaction` and `runaction`
    name the boot actions used for those."""

    __tablename__ = "hosts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    membership_id: Mapped[int] = mapped_column(ForeignKey("memberships.id"))
    rack: Mapped[int] = mapped_column(Integer, default=0)
    rank: Mapped[int] = mapped_column(Integer, default=0)
    cpus: Mapped[int] = mapped_column(Integer, default=1)
    os: Mapped[str] = mapped_column(String(32), default="linux")
    arch: Mapped[str] = mapped_column(String(32), default="x86_64")
    installaction: Mapped[str | None] = mapped_column(String(256), default="install")
    runaction: Mapped[str | None] = mapped_column(String(256), default="os")
    boot_action: Mapped[str | None] = mapped_column(String(16), default=None)
    comment: Mapped[str | None] = mapped_column(String(256), default=None)

    membership: Mapped[Membership] = relationship()
