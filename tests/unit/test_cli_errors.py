"""Every ``cartpulse`` command turns a Kafka or Redis that does not answer, a missing or
unwritable file and a bad setting into one line on stderr and exit code 2 (``--debug`` shows
the traceback); a run in which no input line was valid exits 1."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli.main import main
from tests.support.net import free_port

UNREACHABLE = "127.0.0.1:1"  # nothing listens on port 1: refused at once
SECRETS = {
    "CARTPULSE_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "CARTPULSE_TWILIO_AUTH_TOKEN": "token",
    "CARTPULSE_TWILIO_FROM": "+15550000000",
    "CARTPULSE_UNSUBSCRIBE_SECRET": "unsubscribe",
    "CARTPULSE_CLICK_SECRET": "click",
    "CARTPULSE_COUPON_SECRET": "coupon",
    "CARTPULSE_WEB_PORT": "0",
}
EVENT = (
    b'{"event_id":"e1","type":"product_viewed","occurred_at":"2026-01-01T00:00:00Z",'
    b'"session_id":"s1","product":{"id":"p1"}}'
)


def cartpulse(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CARTPULSE_")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**base, **(env or {})},
        cwd=cwd,
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )


def assert_one_line(run: subprocess.CompletedProcess[str], *words: str) -> str:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("cartpulse: ")
    for word in words:
        assert word in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ["topics", "create"],
        ["topics", "counts"],
        ["import", "{events}"],
        ["report"],
        ["watermark", "end"],
        ["replay", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z"],
        ["worker"],
        ["simulate", "--kafka", "--events", "5"],
    ],
    ids=lambda c: " ".join(c),
)
def test_an_unreachable_kafka_is_one_line_and_exit_2(command: list[str], tmp_path: Path) -> None:
    unreachable_kafka(command, tmp_path)


@pytest.mark.parametrize(
    "command",
    [["send", "sms"], ["send", "email"], ["consents", "mirror"], ["webhooks"]],
    ids=lambda c: " ".join(c),
)
@pytest.mark.usefixtures("stack")  # these reach the stack's Redis first, and only then Kafka
def test_an_unreachable_kafka_after_redis_is_one_line_and_exit_2(
    command: list[str], tmp_path: Path
) -> None:
    unreachable_kafka(command, tmp_path)


def unreachable_kafka(command: list[str], tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(EVENT + b"\n")
    env = {
        **SECRETS,
        "CARTPULSE_KAFKA_BOOTSTRAP_SERVERS": UNREACHABLE,
        "CARTPULSE_DATA_DIR": str(tmp_path / "state"),
        "CARTPULSE_WEBHOOKS_PORT": str(free_port()),
        "CARTPULSE_WEBHOOKS_METRICS_PORT": str(free_port()),
    }
    run = cartpulse(*(a.format(events=events) for a in command), env=env, cwd=tmp_path)
    assert_one_line(run, "cannot reach Kafka at 127.0.0.1:1", "CARTPULSE_KAFKA_BOOTSTRAP_SERVERS")


def test_the_bootstrap_servers_flag_overrides_the_setting(tmp_path: Path) -> None:
    run = cartpulse("topics", "counts", "--bootstrap-servers", UNREACHABLE, cwd=tmp_path)
    assert_one_line(run, "cannot reach Kafka at 127.0.0.1:1")


@pytest.mark.parametrize("command", [["consents", "mirror"], ["send", "sms"]])
def test_an_unreachable_redis_is_one_line_and_exit_2(command: list[str], tmp_path: Path) -> None:
    env = {**SECRETS, "CARTPULSE_REDIS_URL": "redis://user:hunter2@127.0.0.1:1/0"}
    run = cartpulse(*command, env=env, cwd=tmp_path)
    line = assert_one_line(run, "cannot reach Redis at redis://127.0.0.1:1", "CARTPULSE_REDIS_URL")
    assert "hunter2" not in line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    env = {"CARTPULSE_KAFKA_BOOTSTRAP_SERVERS": UNREACHABLE}
    run = cartpulse("--debug", "topics", "counts", env=env, cwd=tmp_path)
    assert run.returncode == 2
    assert "Traceback" in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("cartpulse: cannot reach Kafka")


def test_an_output_in_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(EVENT + b"\n")
    missing = tmp_path / "missing-dir" / "x.jsonl"
    run = cartpulse("detect", "--input", str(events), "--output", str(missing))
    assert_one_line(run, str(missing), "does not exist")


def test_an_unwritable_output_is_one_line(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(EVENT + b"\n")
    run = cartpulse("detect", "--input", str(events), "--output", str(tmp_path))
    assert_one_line(run, str(tmp_path))


def test_a_missing_input_is_one_line(tmp_path: Path) -> None:
    run = cartpulse("detect", "--input", str(tmp_path / "nope.jsonl"), "--output", "-")
    assert_one_line(run, "nope.jsonl", "no such file")


@pytest.mark.parametrize(
    ("name", "value"),
    [("CARTPULSE_GAP", "20x"), ("CARTPULSE_TOPIC_PARTITIONS", "many")],
)
def test_a_bad_setting_is_one_line(name: str, value: str, tmp_path: Path) -> None:
    run = cartpulse("topics", "list", env={name: value}, cwd=tmp_path)
    assert_one_line(run, name)


CSV = (
    b"event_time,event_type,product_id,category_id,category_code,brand,price,user_id,"
    b"user_session\n"
    b"2019-10-01 00:00:00 UTC,add_to_cart,1,2,,b,1.00,u1,s1\n"
    b"2019-10-01 00:00:01 UTC,add_to_cart,1,2,,b,1.00,u1,s1\n"
    b"2019-10-01 00:00:02 UTC,page_view,1,2,,b,1.00,u1,s1\n"
)


def test_detect_exits_1_when_no_line_was_valid(tmp_path: Path) -> None:
    data = tmp_path / "events.csv"
    data.write_bytes(CSV)
    run = cartpulse(
        "detect", "--format", "jsonl", "--input", str(data), "--output", str(tmp_path / "o")
    )
    assert run.returncode == 1, run.stderr
    assert "no line of" in run.stderr
    assert "Traceback" not in run.stderr


def test_detect_names_unknown_types_with_counts(tmp_path: Path) -> None:
    data = tmp_path / "events.csv"
    data.write_bytes(CSV)
    run = cartpulse("detect", "--input", str(data), "--output", str(tmp_path / "o"))
    assert "unknown types: add_to_cart 2, page_view 1" in run.stderr
    assert run.returncode == 1


def test_detect_names_unknown_jsonl_types(tmp_path: Path) -> None:
    data = tmp_path / "events.jsonl.gz"
    unknown = EVENT.replace(b"product_viewed", b"page_view")
    data.write_bytes(gzip.compress(EVENT + b"\n" + unknown + b"\n" + unknown + b"\n"))
    run = cartpulse("detect", "--input", str(data), "--output", str(tmp_path / "o"))
    assert run.returncode == 0, run.stderr
    assert "unknown types: page_view 2" in run.stderr


def test_journeys_exits_1_when_no_line_was_valid(tmp_path: Path) -> None:
    bad = tmp_path / "abandonments.jsonl"
    bad.write_bytes(b"not json\n{}\n")
    run = cartpulse(
        "journeys", "--abandonments", str(bad), "--output", str(tmp_path / "c.jsonl"), env=SECRETS
    )
    assert run.returncode == 1, run.stderr
    assert "no input line was valid" in run.stderr


def test_journeys_warns_without_consents(tmp_path: Path) -> None:
    empty = tmp_path / "abandonments.jsonl"
    empty.write_bytes(b"")
    run = cartpulse(
        "journeys", "--abandonments", str(empty), "--output", str(tmp_path / "c"), env=SECRETS
    )
    assert run.returncode == 0, run.stderr
    assert "every SMS/email step needs consent: pass --consents" in run.stderr
    consents = tmp_path / "consents.jsonl"
    consents.write_bytes(b"")
    run = cartpulse(
        "journeys", "--abandonments", str(empty), "--consents", str(consents),
        "--output", str(tmp_path / "c"), env=SECRETS,
    )  # fmt: skip
    assert f"no consent was read from {consents}" in run.stderr


def test_main_maps_errors_in_process(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["preview", "--commands", str(tmp_path / "nope"), "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "nope: no such file" in err
