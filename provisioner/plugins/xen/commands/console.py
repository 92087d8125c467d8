"""`rocks open host console`: how to reach a VM's console, and attaching to its serial one, so
an install can be watched without a desktop (the seeds used virt-manager and rocks-console)."""

from __future__ import annotations

import io
import sys
from typing import Any

from provisioner.cli.command import Arg, Command, Param
from provisioner.cli.context import Context


class OpenHostConsole(Command):
    """Show how to reach a VM's consoles; with attach=yes, attach to its serial console.

    The VNC display and the serial device come from the running VM's definition on its
    container. Attached, keys go to the VM and its output comes here; Ctrl-] detaches.
    """

    name = "open host console"
    transactional = False
    args = (Arg("host", "The VM."),)
    params = (Param("attach", "Attach this terminal to the VM's serial console.", "bool", False),)
    examples = (
        ("rocks open host console compute-0-0-0", "Where its consoles are."),
        ("rocks open host console compute-0-0-0 attach=yes", "Watch its install on ttyS0."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.db.reader import Reader
        from provisioner.errors import UsageError
        from provisioner.plugins.xen import power, queries, vmconfig
        from provisioner.services.hostargs import resolve_host

        # Read what we need and let the database go: attaching may last hours.
        with Reader.connect(ctx.config.db_url, timeout=ctx.config.database_timeout) as reader:
            vm = queries.require_vm(reader, resolve_host(reader, args[0]))
            cfg = vmconfig.vm_config(reader, vm, vmconfig.Containers(reader))
        info = power.call(ctx.hooks, cfg, "find the console of", lambda d: d.console(cfg))
        if not params["attach"]:
            ctx.write("\n".join(info.lines))
            return
        if not info.can_attach:
            raise UsageError(f"{cfg.where} is not running: start it first")
        app_out = ctx.app.stdout
        # A pipe or terminal has a byte buffer; an in-memory text stdin (tests) is read whole.
        stdin = getattr(sys.stdin, "buffer", None) or io.BytesIO(sys.stdin.read().encode())
        stdout = getattr(app_out, "buffer", None) or _TextBytes(app_out)
        ctx.progress(f"connecting to {cfg.name}'s serial console (Ctrl-] detaches)\n")
        with _raw_terminal(stdin):
            power.call(
                ctx.hooks,
                cfg,
                "attach to the console of",
                lambda d: d.attach_console(cfg, stdin, stdout),
            )
        ctx.progress("\ndetached\n")


class _TextBytes:
    """Bytes written to a text stream (the in-process test runner's StringIO)."""

    def __init__(self, text: Any) -> None:
        self.text = text

    def write(self, data: bytes) -> int:
        self.text.write(data.decode("utf-8", "replace"))
        return len(data)

    def flush(self) -> None:
        self.text.flush()


class _raw_terminal:  # noqa: N801 - used as a context manager
    """Keys go to the VM one by one (no line editing, no local echo) while attached."""

    def __init__(self, stream: Any) -> None:
        self.fd: int | None = None
        self.saved: Any = None
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            return
        import os

        if os.isatty(fd):
            self.fd = fd

    def __enter__(self) -> None:
        if self.fd is not None:
            import termios
            import tty

            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None and self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
