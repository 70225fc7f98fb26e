"""Conventions every ``cartpulse`` subcommand keeps: --version, defaults in --help, - and .gz
inputs, --json summaries, Kafka flags on the commands that talk to Kafka, the terminal width."""

from __future__ import annotations

import argparse
import gzip
import io
from importlib.metadata import version
from pathlib import Path

import orjson
import pytest

from streams.cli.journeys import print_report
from streams.cli.main import _parser, main
from streams.tools.report import Report
from tests.unit.test_cli_errors import EVENT, SECRETS, cartpulse

KAFKA_COMMANDS = {
    "import", "worker", "simulate", "watermark", "topics create", "topics list", "topics counts",
    "send sms", "send email", "consents mirror", "consents history", "consents export",
    "webhooks", "report", "replay",
}  # fmt: skip


def commands(
    parser: argparse.ArgumentParser, name: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                found += commands(child, f"{name} {sub}".strip())
    return found


def test_version_comes_from_the_package(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"cartpulse {version('cartpulse')}"


@pytest.mark.parametrize(("name", "parser"), commands(_parser()), ids=lambda v: str(v)[:30])
def test_every_help_shows_the_defaults(name: str, parser: argparse.ArgumentParser) -> None:
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        default = action.default
        if not action.option_strings or default in (None, False, argparse.SUPPRESS):
            continue
        if isinstance(action, argparse._StoreTrueAction | argparse._HelpAction):
            continue
        assert f"(default: {default})" in text, (name, action.dest)


def test_the_commands_that_talk_to_kafka_take_its_flags() -> None:
    found = dict(commands(_parser()))
    for name in KAFKA_COMMANDS:
        options = {o for a in found[name]._actions for o in a.option_strings}
        assert {"--bootstrap-servers", "--prefix"} <= options, name
    delete = {o for a in found["topics delete"]._actions for o in a.option_strings}
    assert "--bootstrap-servers" in delete


def test_detect_reads_stdin_and_gzip_alike_with_a_json_summary(tmp_path: Path) -> None:
    lines = EVENT + b"\n" + EVENT.replace(b'"e1"', b'"e2"') + b"\n"
    packed = tmp_path / "events.jsonl.gz"
    packed.write_bytes(gzip.compress(lines))
    plain = tmp_path / "events.jsonl"
    plain.write_bytes(lines)
    outputs = []
    for source, stdin in ((plain, b""), (packed, b""), (Path("-"), lines)):
        out = tmp_path / f"out-{len(outputs)}.jsonl"
        run = cartpulse(
            "detect", "--input", str(source), "--output", str(out), "--flush", "--json",
            stdin=stdin,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        summary = orjson.loads(run.stdout)
        assert summary["events"] == 2
        outputs.append(out.read_bytes())
    assert outputs[0] and outputs[0] == outputs[1] == outputs[2]


def test_journeys_takes_gzip_and_prints_json(tmp_path: Path) -> None:
    empty = tmp_path / "abandonments.jsonl.gz"
    empty.write_bytes(gzip.compress(b""))
    run = cartpulse(
        "journeys", "--abandonments", str(empty), "--output", str(tmp_path / "c.jsonl"),
        "--json", env=SECRETS,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert orjson.loads(run.stdout)["commands"] == {}


def test_preview_reads_commands_from_stdin(tmp_path: Path) -> None:
    run = cartpulse("preview", "--commands", "-", "--output", str(tmp_path / "p"), env=SECRETS)
    assert run.returncode == 0, run.stderr
    assert "0 emails and 0 SMS rendered" in run.stdout


@pytest.mark.parametrize("columns", [80, 200])
def test_the_report_fits_the_terminal(columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    out = io.StringIO()
    print_report(Report().rows(), out)
    printed = out.getvalue().splitlines()
    assert printed
    assert max(len(line) for line in printed) <= columns
    assert "cartpulse journeys" not in out.getvalue()


def test_no_progress_display_in_a_pipe(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(EVENT + b"\n")
    run = cartpulse("detect", "--input", str(events), "--output", str(tmp_path / "o"))
    assert run.returncode == 0
    assert "detecting" not in run.stderr
    assert "\x1b[" not in run.stderr
