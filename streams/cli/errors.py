"""What the ``cartpulse`` command says when a run fails: one line naming what failed and what
to check, and the exit code.

``explain`` is the one place where the failures of the outside world (a Kafka or Redis that
does not answer, a file that is missing or cannot be written) become messages; anything it does
not know is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from urllib.parse import urlsplit

from streams.contract.errors import CartpulseError, ConfigurationError, Unreachable

USAGE = 2  # bad usage, settings or surroundings: fix them and run again
REJECTED = 1  # done, but some input was refused


class BootstrapFailures(logging.Filter):
    """Drops aiokafka's log line for each broker it cannot bootstrap from: the failure is
    raised after it and reported once, as ``kafka_unreachable`` says."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith('Unable connect to "')


def quiet_bootstrap_failures() -> None:
    """Install ``BootstrapFailures`` on aiokafka's logger (once)."""
    logger = logging.getLogger("aiokafka")
    if not any(isinstance(f, BootstrapFailures) for f in logger.filters):
        logger.addFilter(BootstrapFailures())


def kafka_unreachable(servers: str) -> Unreachable:
    return Unreachable(
        f"cannot reach Kafka at {servers} (CARTPULSE_KAFKA_BOOTSTRAP_SERVERS or "
        "--bootstrap-servers): is it running, and is the address right?"
    )


def redis_unreachable(url: str) -> Unreachable:
    return Unreachable(
        f"cannot reach Redis at {redis_location(url)} (CARTPULSE_REDIS_URL): is it running, "
        "and is the address right?"
    )


def redis_location(url: str) -> str:
    """The URL without its credentials: a message must not show a password."""
    parts = urlsplit(url)
    host = parts.hostname or parts.path or "?"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


def explain(exc: BaseException, kafka: str, redis: str) -> tuple[str, int] | None:
    """The message and exit code for ``exc`` (or an error it was raised from), or ``None`` for
    an error that is not the surroundings' fault. ``kafka`` and ``redis`` are the addresses in
    use, for the message."""
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    for error in _causes(exc):
        if isinstance(error, ConfigurationError | Unreachable):
            return str(error), USAGE
        if isinstance(error, CartpulseError):
            return str(error), REJECTED
        if isinstance(error, KafkaConnectionError | KafkaTimeoutError):
            return str(kafka_unreachable(kafka)), USAGE
        if isinstance(error, RedisConnectionError | RedisTimeoutError):
            return str(redis_unreachable(redis)), USAGE
        if isinstance(error, OSError) and error.filename is not None:
            return _file_problem(error), USAGE
    return None


def _file_problem(error: OSError) -> str:
    name = os.fsdecode(error.filename)
    reason = error.strerror or str(error)
    if isinstance(error, FileNotFoundError):
        parent = os.path.dirname(name)
        if parent and not os.path.isdir(parent):
            return f"{name}: the directory {parent} does not exist: create it or fix the path"
        return f"{name}: no such file: check the path"
    if isinstance(error, PermissionError):
        return f"{name}: permission denied: check the file's and its directory's permissions"
    if isinstance(error, IsADirectoryError):
        return f"{name}: is a directory: give a file"
    return f"{name}: {reason}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, the errors of a group, then what each was raised from (at most a few deep)."""
    seen: set[int] = set()
    pending = [exc]
    while pending and len(seen) < 32:
        error = pending.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        if isinstance(error, BaseExceptionGroup):
            pending.extend(error.exceptions)
        context = None if error.__suppress_context__ else error.__context__
        pending.extend(e for e in (error.__cause__, context) if e is not None)
