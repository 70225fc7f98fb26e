"""The worker's logging: JSON lines on stderr, the senders' format (``senders.cli.JsonFormatter``).

Faust (through mode) replaces the root logger's handlers when the worker starts, with a coloured
text handler unless it is given a ``logging.config.dictConfig`` dictionary; ``logging_config``
is that dictionary, passed as ``faust.Worker(logging_config=...)``. Every cartpulse process then
writes one JSON object a line (``at``, ``level``, ``logger``, ``message``, ``error``), which
log shippers read without a parser per service.
"""

from __future__ import annotations

from typing import Any

from senders.cli import JsonFormatter

_LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "error": "ERROR"}


def logging_config(loglevel: str) -> dict[str, Any]:
    """A ``dictConfig`` dictionary: the root logger at ``loglevel`` (``debug`` … ``error``,
    the ``--loglevel`` choices) writing JSON lines to stderr; aiokafka's chatter only from
    warnings on, as in the senders."""
    level = _LEVELS.get(loglevel.lower(), loglevel.upper())
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {"aiokafka": {"level": "WARNING"}},
    }
