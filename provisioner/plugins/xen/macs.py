"""VM MAC addresses: the per-frontend base and the next free address (reference §5.2, §9).

The base comes from the physical frontend's public IP a.b.c.d: drop `a`, reverse the rest to
(d, c, b), keep the two low bits of `d` in the top bits of the fourth octet and make `d` a
unicast, locally administered first octet. 137.110.119.114 gives 72:77:6e:80:00:00 within
mask ff:ff:ff:c0:00:00: 22 bits, four million VMs, per frontend. Without a public IP, Xen's
own prefix 00:16:3e is used.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from provisioner.errors import Conflict, UsageError

MASK = "ff:ff:ff:c0:00:00"
XEN_BASE = "00:16:3e:00:00:00"
XEN_MASK = "ff:ff:ff:00:00:00"


def to_int(mac: str) -> int:
    return int(mac.replace(":", "").replace("-", ""), 16)


def to_mac(value: int) -> str:
    raw = f"{value:012x}"
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def base_from_ip(ip: str) -> str:
    try:
        addr = ipaddress.IPv4Address(ip.strip())
    except ValueError:
        raise UsageError(f"bad public address '{ip}' for the VM MAC base") from None
    _, b, c, d = addr.packed
    first = (d & ~0b11 & 0xFF) | 0b10
    return to_mac((first << 40) | (c << 32) | (b << 24) | ((d & 0b11) << 22))


def base_and_mask(public_ip: str | None) -> tuple[str, str]:
    if not public_ip:
        return XEN_BASE, XEN_MASK
    return base_from_ip(public_ip), MASK


class MacAllocator:
    """Hands out consecutive MACs above the highest one already used in the range."""

    def __init__(self, base: str, mask: str, used: Iterable[str]) -> None:
        self.base, self.mask = to_int(base), to_int(mask)
        if self.base & ~self.mask & 0xFFFFFFFFFFFF:
            raise UsageError(f"VM MAC base {base} has bits outside its mask {mask}")
        top = None
        for mac in used:
            if not mac:
                continue
            try:
                value = to_int(mac)
            except ValueError:
                continue
            if value & self.mask == self.base and (top is None or value > top):
                top = value
        self._next = self.base if top is None else top + 1

    def next(self) -> str:
        value = self._next
        if value & self.mask != self.base:
            raise Conflict(f"no VM MAC address left in {to_mac(self.base)}/{to_mac(self.mask)}")
        self._next += 1
        return to_mac(value)
