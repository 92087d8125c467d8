"""Boot actions, per-host boot state and boot flags, in both Rocks generations.

Rocks 5.2+ (`bootaction`, `set host boot action=install|os|run`, installaction/runaction) is the
model; the 5.0 commands (`pxeboot`, `pxeaction`, `pxearg`) are views of it:

- a 5.0 COMMAND is `kernel <file>` for a kernel file, else the raw pxelinux line (`localboot 0`,
  `kernel memdisk bigraw`); 5.0 ARGS are `append <args>` with the `initrd=` of the ramdisk.
- `set host pxeboot action=X` names the action itself, as the 5.0 pxeboot table did: a name
  starting with "install" becomes the install action and the state `install`; any other name
  (`os`, `memtest`, `pxeflash`) becomes the run action and the state `os`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from provisioner.db.models import BootAction, BootFlags, Host
from provisioner.db.reader import Reader
from provisioner.errors import Conflict, NotFound, UsageError

STATES = ("install", "os", "run")


@dataclass(frozen=True)
class Action:
    action: str
    kernel: str | None
    ramdisk: str | None
    args: str | None
    host_id: int | None = None


# -- reading ------------------------------------------------------------------------------------


def list_actions(reader: Reader, host_id: int | None = None) -> list[Action]:
    """Global actions, with `host_id` the host's overrides replacing same-named global ones."""
    rows = [
        Action(*r)
        for r in reader.all(
            "SELECT action, kernel, ramdisk, args, host_id FROM bootactions "
            "WHERE host_id IS NULL OR host_id = :h ORDER BY action",
            h=host_id if host_id is not None else -1,
        )
    ]
    merged: dict[str, Action] = {}
    for row in rows:
        if row.host_id is not None or row.action not in merged:
            merged[row.action] = row
    return [merged[k] for k in sorted(merged)]


def find_action(reader: Reader, name: str, host_id: int | None = None) -> Action | None:
    rows = reader.all(
        "SELECT action, kernel, ramdisk, args, host_id FROM bootactions "
        "WHERE action = :a AND (host_id IS NULL OR host_id = :h) ORDER BY host_id",
        a=name,
        h=host_id if host_id is not None else -1,
    )
    if not rows:
        return None
    # A host's own row wins over the global one.
    rows.sort(key=lambda r: r[4] is None)
    return Action(*rows[0])


def effective_action_name(
    state: str | None, installaction: str | None, runaction: str | None
) -> str | None:
    """The boot action a host uses next: its install action when installing, else its run action."""
    if state is None:
        return None
    return installaction if state == "install" else runaction


def bootflags(reader: Reader, host_id: int | None) -> str:
    """The host's boot flags, or the cluster default when it has none."""
    if host_id is not None:
        own = reader.one("SELECT flags FROM bootflags WHERE host_id = :h", h=host_id)
        if own is not None:
            return own[0] or ""
    return reader.scalar("SELECT flags FROM bootflags WHERE host_id IS NULL") or ""


# -- 5.0 views ----------------------------------------------------------------------------------


def pxe_command(kernel: str | None) -> str | None:
    if not kernel:
        return None
    if kernel.startswith("vmlinuz") or "://" in kernel:
        return f"kernel {kernel}"
    return kernel


def pxe_args(args: str | None, ramdisk: str | None) -> str | None:
    words = (args or "").split()
    if ramdisk:
        at = 1 if words[:1] == ["ks"] else 0
        words.insert(at, f"initrd={ramdisk}")
    return "append " + " ".join(words) if words else None


def from_pxe(command: str, args: str) -> tuple[str, str | None, str]:
    """(kernel, ramdisk, args) from the 5.0 COMMAND and ARGS forms."""
    cmd = command.strip()
    kernel = cmd[len("kernel ") :].strip() if cmd.startswith("kernel vmlinuz") else cmd
    words = shlex.split(args) if args else []
    if words[:1] == ["append"]:
        words = words[1:]
    ramdisk = None
    rest = []
    for w in words:
        if w.startswith("initrd=") and ramdisk is None:
            ramdisk = w[len("initrd=") :]
        else:
            rest.append(w)
    return kernel, ramdisk, " ".join(rest)


# -- changes ------------------------------------------------------------------------------------


def add_action(
    session: Session,
    action: str,
    kernel: str | None,
    ramdisk: str | None,
    args: str | None,
    host_id: int | None = None,
    replace: bool = False,
) -> BootAction:
    action = " ".join(action.split())
    if not action:
        raise UsageError("a boot action needs a name")
    row = session.scalar(
        select(BootAction).where(
            BootAction.action == action,
            BootAction.host_id.is_(None) if host_id is None else BootAction.host_id == host_id,
        )
    )
    if row is not None and not replace:
        raise Conflict(f"boot action '{action}' already exists (remove it first)")
    if row is None:
        row = BootAction(action=action, host_id=host_id)
        session.add(row)
    row.kernel, row.ramdisk, row.args = kernel or None, ramdisk or None, args or None
    session.flush()
    return row


def remove_action(session: Session, action: str, host_id: int | None = None) -> None:
    if host_id is None:
        used = session.scalar(
            select(Host.name).where((Host.installaction == action) | (Host.runaction == action))
        )
        if used is not None:
            raise Conflict(f"boot action '{action}' is used by host '{used}'")
    result = session.execute(
        delete(BootAction).where(
            BootAction.action == action,
            BootAction.host_id.is_(None) if host_id is None else BootAction.host_id == host_id,
        )
    )
    if not result.rowcount:
        raise NotFound(f"no boot action '{action}'")


def _require_action(session: Session, name: str, host_id: int) -> None:
    exists = session.scalar(
        select(BootAction.id).where(
            BootAction.action == name,
            (BootAction.host_id.is_(None)) | (BootAction.host_id == host_id),
        )
    )
    if exists is None:
        raise NotFound(f"no boot action '{name}' (see 'rocks list bootaction')")


def set_state(session: Session, host: Host, state: str | None) -> None:
    if state is not None and state not in STATES:
        raise UsageError(f"boot action must be one of {', '.join(STATES)}, not '{state}'")
    host.boot_action = state


def set_host_state(session: Session, host_id: int, state: str | None) -> None:
    """`set_state` for a host known by id (the API's PUT /hosts/<name>/boot)."""
    host = session.get(Host, host_id)
    if host is None:
        raise NotFound(f"host {host_id} is gone")
    set_state(session, host, state)


def set_named_action(session: Session, host: Host, which: str, name: str) -> None:
    """Set the host's install or run action; `none` clears it."""
    value = None if name.lower() == "none" else " ".join(name.split())
    if value is not None:
        _require_action(session, value, host.id)
    setattr(host, which, value)


def set_pxeboot(session: Session, host: Host, action: str) -> None:
    """The 5.0 `set host pxeboot action=X` on the 5.2 model (see the module docstring)."""
    action = " ".join(action.split())
    if action == "run":
        set_state(session, host, "run")
    elif action.startswith("install"):
        set_named_action(session, host, "installaction", action)
        set_state(session, host, "install")
    else:
        set_named_action(session, host, "runaction", action)
        set_state(session, host, "os")


def set_bootflags(session: Session, host_id: int | None, flags: str) -> None:
    row = session.scalar(
        select(BootFlags).where(
            BootFlags.host_id.is_(None) if host_id is None else BootFlags.host_id == host_id
        )
    )
    if row is None:
        session.add(BootFlags(host_id=host_id, flags=flags))
    else:
        row.flags = flags
    session.flush()


def remove_bootflags(session: Session, host_id: int | None) -> None:
    session.execute(
        delete(BootFlags).where(
            BootFlags.host_id.is_(None) if host_id is None else BootFlags.host_id == host_id
        )
    )
