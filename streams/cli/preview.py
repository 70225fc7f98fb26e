"""``cartpulse preview``: render send commands the way the senders would, without sending."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from streams.contract.errors import ConfigurationError
from streams.offline.sources import open_input
from streams.runtime.settings import Settings


def add_parsers(commands: Any) -> None:
    preview = commands.add_parser(
        "preview",
        help="render send commands as the senders would, without sending",
        description="Renders each command through its sender's own code path (template "
        "lookup, opt-out line, links, headers) at its not_before: one .eml per email, one "
        ".sms.txt per SMS (segments, encoding), and index.html showing them side by side. "
        "Exits 1 if any command cannot be rendered, naming the reason.",
    )
    preview.add_argument(
        "--commands", required=True, metavar="FILE|-", help="send commands, JSONL (.gz too)"
    )
    preview.add_argument("--policy", type=Path, metavar="FILE", help="default: the settings'")
    preview.add_argument("--output", required=True, type=Path, metavar="DIR")
    preview.set_defaults(run=run_preview)


def run_preview(args: argparse.Namespace, settings: Settings) -> int:
    from senders.messages.packs import checked_policy
    from senders.runtime.preview import render_previews

    policy, _ = checked_policy(settings, args.policy)
    with open_input(Path(args.commands)) as handle:  # OSError: streams.cli.errors says what
        lines = handle.read().splitlines()
    try:
        previews = render_previews(lines, settings, policy, args.output)
    except OSError as exc:
        raise ConfigurationError(f"{args.output}: {exc.strerror}") from None
    bad = [p for p in previews if p.error is not None]
    sms = [p for p in previews if p.channel == "sms" and p.error is None]
    emails = [p for p in previews if p.channel == "email" and p.error is None]
    print(f"{len(emails):,} emails and {len(sms):,} SMS rendered into {args.output}/index.html")
    for p in bad:
        print(f"  line {p.number} ({p.command_id or 'no command_id'}): {p.error}", file=sys.stderr)
    return 1 if bad else 0
