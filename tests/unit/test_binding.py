"""A process that cannot listen where its settings say stops with one line and exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from streams.contract.errors import ConfigurationError
from streams.runtime.binding import check_bindable, listening


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_free_port_and_port_zero_bind() -> None:
    check_bindable("127.0.0.1", 0, "X")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    check_bindable("127.0.0.1", free, "X")


def test_a_port_in_use_names_the_setting(taken_port: int) -> None:
    with pytest.raises(ConfigurationError, match=r"CARTPULSE_WEB_PORT: cannot bind .*in use"):
        check_bindable("127.0.0.1", taken_port, "CARTPULSE_WEB_PORT")


@pytest.mark.parametrize("host", ["256.1.1.1", "no such host.invalid", "10.255.255.254"])
def test_a_host_that_is_not_ours_names_the_setting(host: str) -> None:
    with pytest.raises(ConfigurationError, match="CARTPULSE_WEB_HOST"):
        check_bindable(host, 6066, "CARTPULSE_WEB_HOST")


def test_listening_binds_each_address_and_closes_them_all(taken_port: int) -> None:
    taken = ("127.0.0.1", taken_port, "CARTPULSE_METRICS_PORT")
    with (
        pytest.raises(ConfigurationError, match="CARTPULSE_METRICS_PORT"),
        listening(("127.0.0.1", 0, "X"), taken),
    ):
        pytest.fail("the block must not run")
    with listening(("127.0.0.1", 0, "A"), ("127.0.0.1", 0, "B")) as sockets:
        assert len(sockets) == 2 and all(s.fileno() >= 0 for s in sockets)
    assert all(s.fileno() == -1 for s in sockets)


@pytest.mark.parametrize("bad", ["port", "host"])
def test_the_worker_stops_with_one_line_and_exit_2(taken_port: int, bad: str) -> None:
    setting = (
        {"CARTPULSE_WEB_PORT": str(taken_port)}
        if bad == "port"
        else {"CARTPULSE_WEB_HOST": "256.1.1.1"}
    )
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        env={**os.environ, "CARTPULSE_COUPON_SECRET": "s", **setting},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("cartpulse: CARTPULSE_WEB_HOST/_WEB_PORT: ")
