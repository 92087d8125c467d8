"""TFTP on the wire: opcodes, error codes, parsing a read request and building the server's
ERROR and OACK packets (RFC 1350, options of RFC 2347), and netascii. No sockets here: the
service, its helper processes and the test client share these.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6

ERR_UNDEFINED = 0
ERR_NOT_FOUND = 1
ERR_ACCESS = 2
ERR_ILLEGAL = 4
ERR_UNKNOWN_TID = 5
ERR_OPTIONS = 8

MAX_BLKSIZE = 65464
HEADER = struct.Struct("!HH")
# netascii is converted in memory, so a larger file must be asked for in octet mode.
NETASCII_LIMIT = 64 * 1024 * 1024


class TftpError(Exception):
    """A TFTP error to send to the client: an RFC 1350 code and a short message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Request:
    """A parsed RRQ or WRQ: option names are lower-cased, the first of a repeated one wins."""

    opcode: int
    filename: str
    mode: str
    options: dict[str, str] = field(default_factory=dict)


def parse_request(packet: bytes) -> Request:
    """`opcode filename NUL mode NUL [name NUL value NUL]...`, or TftpError(ERR_ILLEGAL)."""
    if len(packet) < 6:
        raise TftpError(ERR_ILLEGAL, "malformed request")
    opcode = (packet[0] << 8) | packet[1]
    fields = packet[2:].split(b"\0")
    if len(fields) < 3 or fields[-1] != b"" or not fields[0]:
        raise TftpError(ERR_ILLEGAL, "malformed request")
    try:
        filename = fields[0].decode("utf-8")
    except UnicodeDecodeError:
        raise TftpError(ERR_ACCESS, "file name is not UTF-8") from None
    mode = fields[1].decode("ascii", "replace").lower()
    options: dict[str, str] = {}
    rest = fields[2:-1]
    for i in range(0, len(rest) - 1, 2):
        name = rest[i].decode("ascii", "replace").lower()
        if name and name not in options:
            options[name] = rest[i + 1].decode("ascii", "replace")
    return Request(opcode, filename, mode, options)


def error_packet(code: int, message: str) -> bytes:
    return HEADER.pack(ERROR, code) + message.encode("ascii", "replace")[:200] + b"\0"


def oack_packet(options: dict[str, str]) -> bytes:
    body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in options.items())
    return struct.pack("!H", OACK) + body


def to_netascii(data: bytes) -> bytes:
    """RFC 1350 netascii: CR becomes CR NUL, LF becomes CR LF."""
    return data.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")


def negotiate(
    options: dict[str, str],
    size: int,
    timeout: float,
    max_blksize: int,
    max_windowsize: int,
    max_timeout: int,
) -> tuple[int, int, float, dict[str, str]]:
    """The block size, window and timeout of a transfer of `size` bytes, and the options to
    answer in the OACK (empty: no OACK). Invalid options are left out (RFC 2347 lets a server
    ignore what it does not accept); `timeout` is the server's own, unless the client asks for
    one up to `max_timeout`."""
    blksize, window = 512, 1
    accepted: dict[str, str] = {}
    for name, value in options.items():
        # Plain digits only: int() would also take " 25", "+25" and "2_5".
        if not (value.isascii() and value.isdigit() and len(value) <= 12):
            continue
        number = int(value)
        if name == "blksize" and number >= 8:
            blksize = min(number, max_blksize)
            accepted[name] = str(blksize)
        elif name == "tsize" and number >= 0:
            accepted[name] = str(size)
        elif name == "timeout" and 1 <= number <= min(255, max_timeout):
            timeout = float(number)
            accepted[name] = str(number)
        elif name == "windowsize" and 1 <= number <= 65535:
            window = min(number, max_windowsize)
            accepted[name] = str(window)
    return blksize, window, timeout, accepted
