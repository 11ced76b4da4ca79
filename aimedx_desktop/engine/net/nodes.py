"""DICOM nodes: an AE title at a host and port, written AET@HOST:PORT on the command line."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from aimedx_desktop.engine.net.errors import NetworkError

DEFAULT_AET = "AIMEDX"
"""Our AE title when the user gives none (calling AE title, and the listener's own)."""
DEFAULT_TIMEOUT = 20.0
"""Seconds to wait for a connection, an association answer or one DIMSE response."""
MAX_AET_LENGTH = 16


def check_aet(title: str, what: str = "AE title") -> str:
    """`title` without its insignificant spaces, or NetworkError saying why it is not an AE title.

    PS3.5: at most 16 characters of the default repertoire, no backslash or control character,
    not only spaces.
    """
    stripped = title.strip(" ")
    if not stripped:
        raise NetworkError(f"the {what} is empty")
    if len(stripped) > MAX_AET_LENGTH:
        raise NetworkError(f"the {what} {stripped!r} is longer than {MAX_AET_LENGTH} characters")
    if not stripped.isascii() or "\\" in stripped or any(not ch.isprintable() for ch in stripped):
        raise NetworkError(f"the {what} {stripped!r} may hold only printable ASCII characters and no backslash")
    return stripped


def check_port(port: int | str) -> int:
    try:
        number = int(str(port).strip())
    except ValueError:
        raise NetworkError(f"the port {port!r} is not a number") from None
    if not 1 <= number <= 65535:
        raise NetworkError(f"the port {number} is not between 1 and 65535")
    return number


@dataclass(frozen=True)
class Node:
    """A DICOM application entity we talk to: its AE title, host and port, and a name for people."""

    aet: str
    host: str
    port: int
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "aet", check_aet(self.aet, "node's AE title"))
        object.__setattr__(self, "port", check_port(self.port))
        host = self.host.strip()
        if not host or any(ch.isspace() for ch in host):
            raise NetworkError(f"the host {self.host!r} is not a host name or address")
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "name", self.name.strip())

    @property
    def address(self) -> str:
        """AET@HOST:PORT, with an IPv6 address in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.aet}@{host}:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.address})" if self.name else self.address

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Node:
        return cls(str(data["aet"]), str(data["host"]), int(data["port"]), str(data.get("name", "")))


def parse_node(text: str, name: str = "") -> Node:
    """'AET@HOST:PORT' (IPv6 as AET@[::1]:PORT) as a Node; NetworkError for anything else."""
    aet, at, rest = text.strip().rpartition("@")
    host, colon, port = rest.rpartition(":")
    if not at or not colon:
        raise NetworkError(f"{text!r} is not a DICOM node: write it AET@HOST:PORT, e.g. PACS@192.168.1.20:104")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return Node(aet, host, check_port(port), name)
