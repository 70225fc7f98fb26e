"""What every ``cartpulse`` subcommand shares: its parser class (defaults shown in ``--help``),
the Kafka flags, the progress display, and the terminal's width."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from collections.abc import Iterator
from typing import Any


class DefaultsFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help when it has a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default in (None, False, argparse.SUPPRESS)
            or isinstance(action, argparse._StoreTrueAction | argparse._HelpAction)
            or not (action.option_strings or action.nargs in ("?", "*"))
        ):
            return action.help
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else "%(default)s"
        return f"{text} (default: {shown})".lstrip()


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose help shows defaults; its subcommands' parsers are too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        # an option without help text would not show its default at all
        if kwargs.get("help") is None and kwargs.get("default") not in (None, False):
            kwargs["help"] = "(default: %(default)s)"
        return super().add_argument(*args, **kwargs)


def kafka_flags(prefix: bool = True) -> CommandParser:
    """A parent parser: ``--bootstrap-servers`` and (unless the command has its own) ``--prefix``,
    overriding ``CARTPULSE_KAFKA_BOOTSTRAP_SERVERS`` and ``CARTPULSE_TOPIC_PREFIX``."""
    flags = CommandParser(add_help=False)
    group = flags.add_argument_group("Kafka")
    group.add_argument(
        "--bootstrap-servers",
        dest="kafka_servers",
        metavar="HOST:PORT[,...]",
        help="Kafka brokers (default: CARTPULSE_KAFKA_BOOTSTRAP_SERVERS)",
    )
    if prefix:
        group.add_argument(
            "--prefix",
            dest="kafka_prefix",
            metavar="PREFIX",
            help="prepended to every topic name (default: CARTPULSE_TOPIC_PREFIX)",
        )
    return flags


def terminal_width(floor: int = 60) -> int:
    """Columns of the terminal (``COLUMNS`` wins; 80 when there is none), at least ``floor``."""
    return max(floor, shutil.get_terminal_size((80, 24)).columns)


@contextlib.contextmanager
def activity(label: str, total: float | None = None) -> Iterator[Any]:
    """A progress display on standard error, only when it is a terminal (never in a pipe or a
    log); yields a callable that advances it by a number of units (of ``total``, if known)."""
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [SpinnerColumn(), TextColumn(label)]
    if total is not None:
        columns += [BarColumn(), TextColumn("{task.percentage:>3.0f}%")]
    progress = Progress(
        *columns, TimeElapsedColumn(), disable=not sys.stderr.isatty(), transient=True
    )
    progress.console.file = sys.stderr
    task = progress.add_task(label, total=total)
    with progress:
        yield lambda units=1.0: progress.advance(task, units)
