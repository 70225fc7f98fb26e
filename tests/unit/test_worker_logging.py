"""The worker logs JSON lines on stderr: ``logging_config`` through mode's own setup, the
function ``faust.Worker`` calls at start with the ``logging_config`` ``_run_worker`` passes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from mode.utils.logging import setup_logging

from streams.runtime.worker_logging import logging_config


@pytest.fixture
def root_restored() -> Iterator[None]:
    """mode replaces the root logger's handlers (pytest's capture among them): put them back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    kafka_level = logging.getLogger("aiokafka").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(kafka_level)


def fail() -> None:
    raise RuntimeError("boom")


@pytest.mark.usefixtures("root_restored")
def test_a_worker_log_line_on_stderr_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(loglevel="warn", logging_config=logging_config("warn"))
    log = logging.getLogger("faust.transport.producer")
    log.warning("producer buffer full size %d", 317)
    log.info("not at warn")
    try:
        fail()
    except RuntimeError:
        log.exception("agent failed")
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [json.loads(line) for line in captured.err.splitlines()]
    assert [(e["level"], e["logger"], e["message"]) for e in lines] == [
        ("warning", "faust.transport.producer", "producer buffer full size 317"),
        ("error", "faust.transport.producer", "agent failed"),
    ]
    assert "RuntimeError: boom" in lines[1]["error"]
    assert lines[0]["at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("choice", "level"),
    [("debug", "DEBUG"), ("info", "INFO"), ("warn", "WARNING"), ("error", "ERROR")],
)
def test_every_loglevel_choice_is_a_logging_level(choice: str, level: str) -> None:
    config = logging_config(choice)
    assert config["root"]["level"] == level
    assert logging.getLevelName(level) != f"Level {level}"
