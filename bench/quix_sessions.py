"""The Quix Streams peer of the cartpulse worker: session-window detection on the same topics.

A Quix Streams application (``quixstreams``, the ``bench`` extra) reads the input topics the
worker reads (JSON events keyed by ``session_id``), takes each event's time from its
``occurred_at``, concatenates the topics (Quix aligns them by time), groups by the message key
(the session) into a session window with the worker's inactivity gap, and produces one record
per closed session (its event count) to an output topic. Sessions close on the partition's
watermark (``closing_strategy="partition"``), as the worker's periods close on its watermark;
Quix closes a session once the watermark passes its last event + 2 x gap + grace (grace 0), the
worker once it passes the last event + gap. RocksDB state and changelog topics: Quix's defaults.

It stops after ``--total`` input records and prints one JSON line: the records, the closed
sessions, the seconds from the first record processed to the last and their rate. Run by
``bench/run.py``; alone: ``python bench/quix_sessions.py --broker HOST:PORT --topics A,B
--output T --group G --state DIR --gap-ms MS --total N``.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from typing import Any

import orjson
from quixstreams import Application
from quixstreams.models import TimestampType


def occurred_ms(value: Any, _headers: Any, _timestamp: int, _kind: TimestampType) -> int:
    """The event's time: its ``occurred_at`` (RFC 3339 with a ``Z``, as cartpulse writes it)."""
    return int(datetime.fromisoformat(value["occurred_at"]).timestamp() * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topics", required=True, help="comma-separated input topics")
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--gap-ms", type=int, required=True)
    parser.add_argument("--total", type=int, required=True)
    args = parser.parse_args()
    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state,
        loglevel="WARNING",
    )
    inputs = [
        app.dataframe(
            app.topic(
                name,
                value_deserializer="json",
                key_deserializer="str",
                timestamp_extractor=occurred_ms,
            )
        )
        for name in args.topics.split(",")
    ]
    sdf = inputs[0]
    for other in inputs[1:]:
        sdf = sdf.concat(other)
    seen = {"records": 0, "closed": 0}
    clock: dict[str, float] = {}

    def took(_value: Any) -> None:
        if not seen["records"]:
            clock["first"] = time.perf_counter()
        seen["records"] += 1
        if seen["records"] >= args.total:
            clock["last"] = time.perf_counter()
            app.stop()

    def closed(_window: Any) -> None:
        seen["closed"] += 1

    sdf = sdf.update(took)
    sessions = sdf.session_window(inactivity_gap_ms=args.gap_ms).count()
    sessions.final(closing_strategy="partition").update(closed).to_topic(
        app.topic(args.output, value_serializer="json", key_serializer="str")
    )
    app.run()
    if "last" not in clock:
        raise SystemExit(f"stopped after {seen['records']} of {args.total} records")
    seconds = clock["last"] - clock["first"]
    sys.stdout.write(
        orjson.dumps(
            {**seen, "seconds": seconds, "rate": seen["records"] / max(seconds, 1e-9)}
        ).decode()
        + "\n"
    )


if __name__ == "__main__":
    main()
