"""Whether a process can listen where its settings say, asked before it starts serving.

A port in use or a host that is not this machine's would otherwise surface deep inside a
framework's start-up (a traceback, or a worker that keeps retrying); asked first, it is one
line naming the setting to change (``ConfigurationError``, exit 2). ``bind`` opens the
listening socket a service then serves on (``listening``: several, closed together);
``check_bindable`` only asks, for a server that binds its own (Faust's web port).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Final

from streams.contract.errors import ConfigurationError

BACKLOG: Final = 512  # connections the kernel queues before the service accepts them


def check_bindable(host: str, port: int, settings: str) -> None:
    """Raise ``ConfigurationError`` naming ``settings`` unless ``host:port`` can be bound now.

    Port 0 (an ephemeral port) always binds. The check binds and closes at once, so a process
    that takes the port between this check and its own bind still fails in its own way.
    """
    bind(host, port, settings).close()


def bind(host: str, port: int, setting: str) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port``; ``ConfigurationError`` naming
    ``setting`` when the address does not resolve or cannot be bound."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigurationError(f"{setting}: cannot bind {host}:{port}: {exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise ConfigurationError(f"{setting}: cannot bind {host}:{port}: {reason}") from None
    sock.setblocking(False)
    return sock


@contextlib.contextmanager
def listening(*addresses: tuple[str, int, str]) -> Iterator[list[socket.socket]]:
    """``bind`` each ``(host, port, setting)`` in order, for the block; close them all after.

    When one cannot be bound, the sockets already bound are closed and its
    ``ConfigurationError`` is raised, before the block runs.
    """
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(contextlib.closing(bind(*each))) for each in addresses]
