"""Boot actions (named kernel + ramdisk + args) and boot flags (kernel args of the installed OS).

A boot action with `host_id` NULL is global; one with a host overrides the global action of the
same name for that host only (the Rocks 5.0 `add host pxeaction <host>` form). Bootflags with
`host_id` NULL are the cluster default.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from provisioner.db.models.base import Base


class BootAction(Base):
    __tablename__ = "bootactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(256))
    kernel: Mapped[str | None] = mapped_column(String(512), default=None)
    ramdisk: Mapped[str | None] = mapped_column(String(512), default=None)
    args: Mapped[str | None] = mapped_column(String(1024), default=None)
    host_id: Mapped[int | None] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), default=None
    )


# NULL never equals NULL in a unique constraint, so "one global action per name" needs the
# expression; both SQLite and PostgreSQL support unique expression indexes.
Index(
    "uq_bootactions_action_host",
    BootAction.action,
    func.coalesce(BootAction.host_id, 0),
    unique=True,
)


class BootFlags(Base):
    __tablename__ = "bootflags"

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int | None] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), default=None
    )
    flags: Mapped[str] = mapped_column(String(1024), default="")


Index("uq_bootflags_host", func.coalesce(BootFlags.host_id, 0), unique=True)
