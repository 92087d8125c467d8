"""Partition rows as hosts report them after install; removing them forces repartitioning.

Importable without SQLAlchemy (the kickstart renderer reads `COLUMNS` on the CLI's fast path);
the functions that write import it themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from provisioner.db.reader import Reader

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

COLUMNS = (
    "device",
    "mountpoint",
    "sectorstart",
    "partitionsize",
    "partitionid",
    "fstype",
    "partitionflags",
    "formatflags",
)


def list_partitions(reader: Reader, host_ids: Sequence[int]) -> list[tuple[Any, ...]]:
    clause, params = reader.in_clause("h", list(host_ids))
    return reader.all(
        f"SELECT host_id, {', '.join(COLUMNS)} FROM partitions "
        f"WHERE host_id IN {clause} ORDER BY host_id, device",
        **params,
    )


def remove_partitions(session: Session, host_id: int, mountpoint: str | None = None) -> int:
    from sqlalchemy import delete

    from provisioner.db.models import Partition

    stmt = delete(Partition).where(Partition.host_id == host_id)
    if mountpoint:
        stmt = stmt.where(Partition.mountpoint == mountpoint)
    return int(session.execute(stmt).rowcount or 0)


def replace_partitions(session: Session, host_id: int, rows: Sequence[dict[str, str]]) -> int:
    """Upsert the host's reported partitions by device (Rocks' setDbPartitions)."""
    from provisioner.db.models import Partition
    from provisioner.services.dbutil import upsert

    for row in rows:
        values = {c: str(row.get(c) or "") for c in COLUMNS if c != "device"}
        upsert(session, Partition, {"host_id": host_id, "device": str(row["device"])}, values)
    return len(rows)
