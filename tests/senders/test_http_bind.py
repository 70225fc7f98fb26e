"""Where the senders' and the mirror's HTTP port listens, and what happens when it cannot:
loopback unless ``CARTPULSE_SENDER_HTTP_HOST`` says otherwise; a port in use or a host that
cannot be bound ends the process with one line on stderr and exit code 2, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from streams.runtime.settings import Settings
from tests.senders.conftest import sender_settings
from tests.support.env import settings_env
from tests.support.net import free_port

COMMANDS = [("send", "sms"), ("send", "email"), ("consents", "mirror")]


def test_the_http_port_listens_on_loopback_by_default() -> None:
    assert Settings(_env_file=None).sender_http_host == "127.0.0.1"  # type: ignore[call-arg]


def run(args: tuple[str, ...], **overrides: object) -> subprocess.CompletedProcess[str]:
    settings = sender_settings(
        Settings(kafka_bootstrap_servers="127.0.0.1:1"),  # never reached: it stops before
        "t:",
        **overrides,
    )
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**os.environ, **settings_env(settings)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.usefixtures("stack")  # the senders reach Redis before they bind
@pytest.mark.parametrize("args", COMMANDS)
def test_a_port_in_use_ends_the_process_with_one_line_and_code_2(args: tuple[str, ...]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(args, sender_http_port=port)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cartpulse: ") and f"127.0.0.1:{port}" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.usefixtures("stack")
def test_a_host_that_cannot_be_bound_ends_the_process_with_one_line_and_code_2() -> None:
    done = run(("send", "sms"), sender_http_port=free_port(), sender_http_host="192.0.2.1")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "192.0.2.1" in lines[0], done.stderr


def test_containers_open_the_port_to_their_probes_and_prometheus() -> None:
    from tests.unit.test_ops_deploy import ALL_INTERFACES, compose_cartpulse_services, containers

    senders = [(name, c) for name, c in containers() if tuple(c["args"]) in set(COMMANDS)]
    assert len(senders) == 3
    for name, container in senders:
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env["CARTPULSE_SENDER_HTTP_HOST"] == ALL_INTERFACES, name
    for name, service in compose_cartpulse_services().items():
        if tuple(service["command"]) in set(COMMANDS):
            assert service["environment"]["CARTPULSE_SENDER_HTTP_HOST"] == ALL_INTERFACES, name
