"""Every cartpulse process's logging: JSON lines on stderr (``JsonFormatter``).

Faust (through mode) replaces the root logger's handlers when the worker starts, with a coloured
text handler unless it is given a ``logging.config.dictConfig`` dictionary; ``logging_config``
is that dictionary, passed as ``faust.Worker(logging_config=...)``. Every cartpulse process then
writes one JSON object a line (``at``, ``level``, ``logger``, ``message``, ``error``), which
log shippers read without a parser per service.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson


class JsonFormatter(logging.Formatter):
    """One JSON object per line; messages never carry raw addresses (they are masked)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            # exc_text first: a filter may have rewritten it (``MaskingFilter`` masks numbers)
            entry["error"] = record.exc_text or self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


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
