"""What the kickstart language of current installers takes, as the generator writes it.

The interpreter Rocks-era scripts name (/opt/rocks/bin/python and friends) becomes
/usr/bin/python3; the logs every %pre and %post goes to unless it names its own; main-section
commands that are renamed, dropped (Rocks 5 commands current anaconda refuses) or repeatable
(any other appears once: the last node's line wins); and the quoting of the bootloader's
--append.
"""

from __future__ import annotations

import re

PYTHON = "/usr/bin/python3"
LEGACY_INTERPRETERS = {
    "/opt/rocks/bin/python": PYTHON,
    "/opt/rocks/bin/python2": PYTHON,
    "/usr/bin/python": PYTHON,
    "/usr/bin/python2": PYTHON,
    "python": PYTHON,
    "python2": PYTHON,
    "python3": PYTHON,
}
PRE_LOG = "/tmp/ks-pre.log"
POST_LOG = "/var/log/rocks-install.log"
POST_LOG_NOCHROOT = "/mnt/sysimage/var/log/rocks-install.log"

RENAMED_COMMANDS = {"lilo": "bootloader"}
# Rocks 5 (RHEL 5) commands that current anaconda refuses.
DROPPED_COMMANDS = frozenset(
    {"install", "interactive", "langsupport", "mouse", "lilocheck", "upgrade", "auth", "key"}
)
# Commands a kickstart may carry many times; any other keeps the last node's line.
REPEATABLE_COMMANDS = frozenset(
    {
        "network",
        "part",
        "partition",
        "raid",
        "logvol",
        "volgroup",
        "btrfs",
        "user",
        "group",
        "sshkey",
        "repo",
        "driverdisk",
        "iscsi",
        "zfcp",
        "fcoe",
        "snapshot",
        "device",
        "module",
        "%include",
        "%ksappend",
    }
)
COMMAND_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


def format_append(flags: str) -> str:
    flags = " ".join(flags.split())
    if not flags:
        return ""
    return ' --append="' + flags.replace("\\", "\\\\").replace('"', '\\"') + '"'
