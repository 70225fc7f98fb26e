"""Whether a process can listen where its settings say, asked before it starts serving.

A port in use or a host that is not this machine's would otherwise surface deep inside a
framework's start-up (a traceback, or a worker that keeps retrying); asked first, it is one
line naming the setting to change (``ConfigurationError``, exit 2).
"""

from __future__ import annotations

import socket

from streams.errors import ConfigurationError


def check_bindable(host: str, port: int, settings: str) -> None:
    """Raise ``ConfigurationError`` naming ``settings`` unless ``host:port`` can be bound now.

    Port 0 (an ephemeral port) always binds. The check binds and closes at once, so a process
    that takes the port between this check and its own bind still fails in its own way.
    """
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise ConfigurationError(
            f"{settings}: {host!r} is not a usable address ({reason})"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise ConfigurationError(
                f"{settings}: cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None
