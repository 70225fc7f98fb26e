"""The check that fails a test for an ERROR it logged undeclared (tests/conftest.py)."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import undeclared_errors

log = logging.getLogger(__name__)


def record(level: int) -> logging.LogRecord:
    return logging.LogRecord(__name__, level, __file__, 1, "boom", None, None)


def test_an_error_logged_here_undeclared_is_reported(request: pytest.FixtureRequest) -> None:
    error, critical = record(logging.ERROR), record(logging.CRITICAL)
    records = [record(logging.INFO), record(logging.WARNING), error, critical]
    assert undeclared_errors(request.node, records) == [error, critical]


@pytest.mark.expect_errors
def test_a_declared_error_is_not(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    assert undeclared_errors(request.node, [record(logging.ERROR)]) == []
    log.error("provoked on purpose")  # this test passes: the marker declares it
    assert [r.getMessage() for r in caplog.records] == ["provoked on purpose"]


def test_aiokafka_retrying_a_leader_election_is_not(request: pytest.FixtureRequest) -> None:
    retried = logging.LogRecord(
        "aiokafka.consumer.fetcher", logging.ERROR, __file__, 1,
        "Failed fetch offsets from %s: %s", (1, "[Error 6] NotLeaderForPartitionError: t.workers"),
        None,
    )  # fmt: skip
    other = logging.LogRecord(
        "aiokafka.consumer.fetcher", logging.ERROR, __file__, 1, "Unexpected error", None, None
    )
    assert undeclared_errors(request.node, [retried, other]) == [other]
