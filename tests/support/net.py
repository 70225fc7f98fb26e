"""Network helpers for tests and the local demo."""

from __future__ import annotations

import random
import socket


def free_port() -> int:
    """A port free on every interface, below the ephemeral range clients use."""
    for _ in range(100):
        port = random.randrange(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))  # noqa: S104 - servers here bind all interfaces
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")
