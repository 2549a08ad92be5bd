"""The server's own settings (address, data dir, auth, size limits), parsed once in ``main.py``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
DEFAULT_PORT = 8188
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """How the API listens and what it accepts.

    Args:
        data_dir: where the queue/history database and users' saved workflows live.
        host: the listen address; anything but loopback needs ``auth_token`` unless ``insecure_no_auth``.
        auth_token: the bearer token every API request must carry (None: no auth).
        max_upload_bytes: the largest file ``/upload/image`` accepts.
        max_body_bytes: the largest JSON or userdata body any route accepts.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    auth_token: str | None = None
    insecure_no_auth: bool = False
    max_upload_bytes: int = 100 * MIB
    max_body_bytes: int = 64 * MIB

    @property
    def loopback_only(self) -> bool:
        return is_loopback_host(self.host)

    def check(self) -> None:
        """Refuse an exposed server without a token; ``ValueError`` says what to do."""
        if not self.loopback_only and not self.auth_token and not self.insecure_no_auth:
            raise ValueError(
                f"--listen {self.host} exposes the server beyond this machine: give --auth-token TOKEN "
                "(or --insecure-no-auth to run without authentication, which anyone on the network can use)"
            )
        if self.auth_token is not None and len(self.auth_token) < 16:
            raise ValueError("--auth-token must be at least 16 characters")
