"""`make demo`: cartpulse end to end, live, in a few minutes, against local test providers.

1. Starts a Twilio-compatible test server and an SMTP test server (STARTTLS + AUTH, a throwaway
   self-signed certificate) in this process, and creates the topics under a fresh prefix.
2. Runs the real processes with CARTPULSE_* settings: `cartpulse worker --clock live` (detector
   and journeys, with deploy/local/demo-policy.toml: minutes scaled down to seconds), the
   consent mirror, both senders and the coupon registrar.
3. Streams simulated shoppers live (`cartpulse simulate --kafka --audience`: profiles and
   consents first, then ~110 s of traffic with current timestamps, short pauses and breaks),
   while a live view shows events, abandonments, commands, send results, what reached the test
   servers and recoveries.
4. Once traffic is over and the last steps had time to fire, prints `cartpulse report` and the
   segments per SMS the Twilio test server received (short links: the demo policy's store has a
   `short_link_base`), writes the SMS requests (JSONL) and the emails (.eml) under
   .cartpulse/demo-<ts>/, stops everything it started (also on Ctrl-C and errors), and checks
   the real REES46 sample offline.

Exits 1 when the report shows no abandonments, no sends on a channel or no recoveries.
Knobs (environment): DEMO_SECONDS (110 s of traffic), DEMO_RATE (40 events/s once every
session has started), DEMO_SHOPPERS (100: they come back, several sessions each), DEMO_SEED (6).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tests.twilio_server and tests.smtp_server live in the repo

import aiohttp  # noqa: E402
import orjson  # noqa: E402
from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402
from rich.console import Console, Group  # noqa: E402
from rich.live import Live  # noqa: E402
from rich.panel import Panel  # noqa: E402
from rich.table import Table  # noqa: E402

from senders.messages.segments import encode_info  # noqa: E402
from streams.contract.topics import Topic, TopicCatalogue  # noqa: E402
from streams.offline.simulate import SimulationConfig, events_within  # noqa: E402
from streams.runtime.kafka import topic_counts  # noqa: E402
from streams.runtime.policy_file import load_policy  # noqa: E402
from streams.runtime.settings import Settings, load_settings  # noqa: E402
from tests.smtp_server import SmtpTestServer, make_certificate  # noqa: E402
from tests.support.env import settings_env  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.twilio_server import TwilioTestServer  # noqa: E402

SECONDS = float(os.environ.get("DEMO_SECONDS", "110"))
RATE = float(os.environ.get("DEMO_RATE", "40"))
SHOPPERS = int(os.environ.get("DEMO_SHOPPERS", "100"))
SEED = int(os.environ.get("DEMO_SEED", "6"))
GAP_S = 15
# The simulated shoppers, with time compressed for a demo: 2 s between clicks, and one pause in
# ten a break of 0.5-1.5 min (longer than the gap: a new activity period, often an order).
MEAN_PAUSE_S, BREAK_MINUTES, BREAK_PROBABILITY = 2.0, (0.5, 1.5), 0.1
POLICY = ROOT / "deploy/local/demo-policy.toml"
REES46 = ROOT / "data/rees46/multicategory-2019-10-01-head.csv"
ACCOUNT_SID = "AC" + secrets.token_hex(16)
AUTH_TOKEN = secrets.token_hex(16)
FROM_NUMBER = "+15005550006"
READY_WITHIN = 120.0
QUIET_FOR = 10.0  # the pipeline counts as settled after this long without a change
SETTLE_AT_MOST = 180.0

console = Console(width=None if sys.stdout.isatty() else 120)
# aiosmtpd warns about its own deprecated attribute on every AUTH: not ours to fix, and noise.
logging.getLogger("mail.log").setLevel(logging.ERROR)


def traffic_events(seconds: float) -> int:
    """How many events the demo's simulation makes in its first ``seconds`` of event time."""
    shape = SimulationConfig(
        events=10**7,
        rate=RATE,
        shoppers=SHOPPERS,
        seed=SEED,
        mean_pause_s=MEAN_PAUSE_S,
        break_minutes=BREAK_MINUTES,
        break_probability=BREAK_PROBABILITY,
    )
    return events_within(shape, seconds)


def cartpulse() -> list[str]:
    exe = Path(sys.executable).with_name("cartpulse")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "streams.cli"]


@dataclass
class Process:
    name: str
    args: list[str]
    log: Path
    ready_url: str | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        with self.log.open("wb") as out:
            # A session of its own: Ctrl-C reaches the demo, which stops it in order.
            self.popen = subprocess.Popen(  # noqa: S603 - our own command
                self.args,
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def exited(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text("utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Tally:
    """What the topics hold so far, repeated records (at-least-once) counted once."""

    events: int = 0
    orders: int = 0
    abandonments: dict[str, str] = field(default_factory=dict)  # abandonment_id → kind
    commands: dict[str, str] = field(default_factory=dict)  # command_id → channel
    results: dict[tuple[str, str], str] = field(default_factory=dict)  # (id, status) → channel
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)
    flows: Counter[str] = field(default_factory=Counter)  # journeys started, by flow
    recoveries: dict[str, tuple[str, Decimal]] = field(default_factory=dict)
    _seen: set[tuple[Any, ...]] = field(default_factory=set)

    def add(self, kind: str, value: bytes | None) -> None:
        try:
            record = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            return
        if not isinstance(record, dict):
            return
        if kind == "abandonments":
            self.abandonments[str(record.get("abandonment_id"))] = str(record.get("kind"))
        elif kind in ("sms", "email"):
            self.commands[str(record.get("command_id"))] = kind
        elif kind == "results":
            cid = str(record.get("command_id"))
            channel = record.get("channel") or self.commands.get(cid, "?")
            self.results[(cid, str(record.get("status")))] = str(channel)
        elif kind == "decisions":
            key = tuple(
                record.get(k)
                for k in ("journey_id", "action", "reason", "step", "abandonment_id", "at")
            )
            if key not in self._seen:
                self._seen.add(key)
                self.decisions[(str(record.get("action")), str(record.get("reason")))] += 1
                if record.get("action") == "started":
                    self.flows[str(record.get("flow"))] += 1
        elif kind == "recoveries":
            try:
                revenue = Decimal(str(record.get("revenue") or 0))
            except InvalidOperation:
                revenue = Decimal(0)
            self.recoveries[str(record.get("recovery_id"))] = (str(record.get("channel")), revenue)

    def fingerprint(self) -> tuple[int, ...]:
        return (
            len(self.abandonments),
            len(self.commands),
            len(self.results),
            sum(self.decisions.values()),
            len(self.recoveries),
        )

    def results_by(self, channel: str) -> Counter[str]:
        return Counter(status for (_, status), ch in self.results.items() if ch == channel)

    def pending(self) -> int:
        """Commands without a final outcome yet."""
        done = {cid for (cid, status) in self.results if status != "duplicate"}
        return len(set(self.commands) - done)


async def follow(settings: Settings, tally: Tally, stop: asyncio.Event) -> None:
    """Read the output topics from their beginning into ``tally`` until ``stop``."""
    topics = TopicCatalogue.of(settings)
    kinds = {
        topics.name(Topic.ABANDONMENTS): "abandonments",
        topics.name(Topic.SEND_SMS): "sms",
        topics.name(Topic.SEND_EMAIL): "email",
        topics.name(Topic.SEND_RESULTS): "results",
        topics.name(Topic.DECISIONS): "decisions",
        topics.name(Topic.RECOVERIES): "recoveries",
    }
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    await asyncio.sleep(0)  # let the background task start before any stop()
    try:
        consumer.assign(
            [TopicPartition(name, p) for name in kinds for p in range(settings.topic_partitions)]
        )
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=300)
            # Commands before results, so that every result finds its channel.
            for tp, records in sorted(batch.items(), key=lambda i: kinds[i[0].topic] == "results"):
                for record in records:
                    tally.add(kinds[tp.topic], record.value)
    finally:
        await consumer.stop()


async def count_inputs(settings: Settings, tally: Tally) -> None:
    topics = TopicCatalogue.of(settings)
    names = [topics.name(t) for t in (Topic.CLICKSTREAM, Topic.CART, Topic.ORDERS)]
    counts = await topic_counts(settings, names)
    tally.events = counts[names[0]] + counts[names[1]]
    tally.orders = counts[names[2]]


@dataclass
class Demo:
    out: Path
    settings: Settings
    env: dict[str, str]
    twilio: TwilioTestServer
    smtp: SmtpTestServer
    tally: Tally = field(default_factory=Tally)
    processes: list[Process] = field(default_factory=list)
    phase: str = "starting"
    started: float = field(default_factory=time.monotonic)
    traffic_started: float | None = None
    traffic_ended: float | None = None

    def sms_created(self) -> int:
        """SMS the Twilio test server created (its other requests were refused)."""
        return sum(1 for r in self.twilio.requests if r.created)

    def sms_segments(self) -> str:
        """Segments per SMS created, as carriers count them (what each message costs)."""
        bodies = [r.form.get("Body", "") for r in self.twilio.requests if r.created]
        if not bodies:
            return "no SMS yet"
        segments = [encode_info(body).segments for body in bodies]
        spread = Counter(segments)
        detail = ", ".join(f"{n} seg: {spread[n]:,}" for n in sorted(spread))
        return f"{sum(segments) / len(segments):.2f} segments per SMS ({detail})"

    def view(self) -> Panel:
        t = self.tally
        kinds = Counter(t.abandonments.values())
        flow = Table.grid(padding=(0, 2))
        flow.add_column(style="bold")
        flow.add_column(justify="right", style="cyan")
        flow.add_column(style="dim")
        flow.add_row("events in", f"{t.events:,}", "clickstream + cart, current timestamps")
        flow.add_row(
            "abandonments",
            f"{len(t.abandonments):,}",
            f"cart {kinds['cart']:,}, browse {kinds['browse']:,}",
        )
        started = sum(n for (a, _), n in t.decisions.items() if a == "started")
        converted = t.decisions[("ended", "converted")]
        by_flow = ", ".join(f"{name} {n:,}" for name, n in t.flows.most_common())
        flow.add_row("journeys", f"{started:,}", f"{by_flow or '-'}; converted {converted:,}")
        by_channel = Counter(t.commands.values())
        flow.add_row(
            "send commands",
            f"{len(t.commands):,}",
            f"sms {by_channel['sms']:,}, email {by_channel['email']:,}",
        )
        for channel in ("sms", "email"):
            statuses = t.results_by(channel)
            detail = ", ".join(f"{s} {n:,}" for s, n in statuses.most_common()) or "-"
            flow.add_row(f"  {channel} results", f"{sum(statuses.values()):,}", detail)
        flow.add_row(
            "Twilio test server",
            f"{self.sms_created():,}",
            f"SMS created, {len(self.twilio.requests):,} requests; {self.sms_segments()}",
        )
        flow.add_row("SMTP test server", f"{len(self.smtp.messages):,}", "emails accepted")
        revenue = sum((r for _, r in t.recoveries.values()), Decimal(0))
        rec = Counter(ch for ch, _ in t.recoveries.values())
        flow.add_row("orders", f"{t.orders:,}", "order_completed events")
        flow.add_row(
            "recoveries",
            f"{len(t.recoveries):,}",
            f"${revenue:,.2f}; after sms {rec['sms']:,}, after email {rec['email']:,}",
        )

        why = Table(
            "decision", "reason", "count", box=None, header_style="bold dim", padding=(0, 1)
        )
        for (action, reason), n in t.decisions.most_common(9):
            why.add_row(action, reason, f"{n:,}")

        latest = []
        if self.twilio.requests:
            sms = self.twilio.requests[-1].form
            latest.append(f"[bold]last SMS[/] to {sms.get('To')}: {sms.get('Body', '')[:320]!r}")
        if self.smtp.messages:
            mail = self.smtp.messages[-1]
            latest.append(
                f"[bold]last email[/] to {', '.join(mail.rcpt_tos)}: {mail.message['Subject']!r}"
            )
        return Panel(
            Group(self.status(), "", flow, "", why, "", *latest),
            title=f"cartpulse demo (live) — topics {self.settings.topic_prefix}*",
            border_style="blue",
        )

    def status(self) -> str:
        now = time.monotonic()
        text = f"[bold]{self.phase}[/]  ({now - self.started:.0f} s since start"
        if self.traffic_started is not None and self.traffic_ended is None:
            text += f"; traffic {now - self.traffic_started:.0f}/{SECONDS:.0f} s"
        return text + ")"

    def line(self) -> str:
        t = self.tally
        by_channel = Counter(t.commands.values())
        return (
            f"[{time.monotonic() - self.started:5.0f}s] {self.phase}: events {t.events:,}, "
            f"abandonments {len(t.abandonments):,}, commands sms {by_channel['sms']:,} "
            f"email {by_channel['email']:,}, SMS at Twilio {self.sms_created():,}, "
            f"emails at SMTP {len(self.smtp.messages):,}, recoveries {len(t.recoveries):,}"
        )

    async def run(self, view: Live | None) -> None:
        stop = asyncio.Event()
        follower = asyncio.create_task(follow(self.settings, self.tally, stop))
        last_line = 0.0
        steps = self.steps()
        try:
            while True:
                await asyncio.sleep(1.0)
                if follower.done():
                    follower.result()  # re-raise what stopped it
                await count_inputs(self.settings, self.tally)
                for process in self.processes:
                    if process.exited is not None and process.name != "simulate":
                        raise RuntimeError(
                            f"{process.name} exited with {process.exited}:\n{process.tail()}"
                        )
                if view is not None:
                    view.update(self.view(), refresh=True)
                elif time.monotonic() - last_line >= 10:
                    last_line = time.monotonic()
                    console.print(self.line(), highlight=False)
                if await anext(steps, None) is None:
                    break
        finally:
            await steps.aclose()
            stop.set()
            with contextlib.suppress(Exception):
                await follower

    async def steps(self) -> AsyncGenerator[bool, None]:
        """The demo's phases, advanced once a second by ``run``; yields while not done."""
        self.phase = "waiting for the worker, the senders and the consent mirror"
        deadline = time.monotonic() + READY_WITHIN
        async with aiohttp.ClientSession() as http:
            while not await self.all_ready(http):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the cartpulse processes were not ready in time; logs: {self.out / 'logs'}"
                    )
                yield True
        self.phase = "streaming shoppers live"
        simulate = self.spawn(
            "simulate",
            [
                "simulate",
                "--kafka",
                "--audience",
                "--events",
                str(traffic_events(SECONDS)),
                "--rate",
                str(RATE),
                "--shoppers",
                str(SHOPPERS),
                "--seed",
                str(SEED),
                "--mean-pause",
                str(MEAN_PAUSE_S),
                "--break-minutes",
                *map(str, BREAK_MINUTES),
                "--break-probability",
                str(BREAK_PROBABILITY),
            ],
        )
        self.traffic_started = time.monotonic()
        while simulate.exited is None:
            yield True
        if simulate.exited != 0:
            raise RuntimeError(f"simulate exited with {simulate.exited}:\n{simulate.tail()}")
        self.traffic_ended = time.monotonic()
        # Every step of a journey fires within gap + its delay of the last event: wait that
        # long, then until nothing has changed for a while and every command has its outcome.
        policy = load_policy(POLICY)
        longest = max(s.after_ms for f in policy.flows.values() for s in f.steps) / 1000
        earliest = self.traffic_ended + GAP_S + longest + 5
        latest = self.traffic_ended + SETTLE_AT_MOST
        seen, since = self.tally.fingerprint(), time.monotonic()
        while True:
            now = time.monotonic()
            self.phase = (
                "traffic is over: waiting for the last journey steps "
                f"({max(0, earliest - now):.0f} s, then until quiet)"
            )
            if self.tally.fingerprint() != seen:
                seen, since = self.tally.fingerprint(), now
            quiet = now - since >= QUIET_FOR and self.tally.pending() == 0
            if now >= latest or (now >= earliest and quiet):
                break
            yield True
        self.phase = "done"

    async def show(self) -> int:
        """Start the processes, run the phases under the live view, then report and check."""
        created = run_cli(self.env, "topics", "create")
        if created.returncode != 0:
            raise RuntimeError(f"cartpulse topics create failed:\n{created.stderr}")
        # Clock (live) and gap come from the settings, as every process's do.
        self.spawn("worker", ["worker", "--loglevel", "warn"], "CARTPULSE_WEB_PORT")
        self.spawn("consents-mirror", ["consents", "mirror"], "CARTPULSE_SENDER_HTTP_PORT")
        self.spawn("send-sms", ["send", "sms"], "CARTPULSE_SENDER_HTTP_PORT")
        self.spawn("send-email", ["send", "email"], "CARTPULSE_SENDER_HTTP_PORT")
        # registers each coupon code (the demo store's provider: the coupons topic) before the
        # email sender may send the message that carries it
        self.spawn("coupons", ["coupons"], "CARTPULSE_SENDER_HTTP_PORT")
        if console.is_terminal:
            with Live(self.view(), console=console, auto_refresh=False) as view:
                await self.run(view)
        else:
            await self.run(None)
            console.print(self.view())
        console.rule("cartpulse report (journey.decisions and recoveries)")
        report = run_cli(self.env, "report")
        console.out(report.stdout.rstrip() or report.stderr, highlight=False)
        sms, emails = self.write_messages()
        console.print(
            f"SMS at the Twilio test server: {self.sms_created():,}, {self.sms_segments()}",
            highlight=False,
        )
        where = [
            (
                "SMS requests at the Twilio test server",
                f"{sms.relative_to(ROOT)}",
                f"{len(self.twilio.requests):,} lines",
            ),
            (
                "emails at the SMTP test server",
                f"{emails.relative_to(ROOT)}/",
                f"{len(self.smtp.messages):,} .eml files",
            ),
            ("process logs", f"{(self.out / 'logs').relative_to(ROOT)}/", ""),
            (
                "topics (kept)",
                f"CARTPULSE_TOPIC_PREFIX={self.settings.topic_prefix} cartpulse topics counts",
                "",
            ),
            (
                "when done with them",
                f"cartpulse topics delete --prefix {self.settings.topic_prefix} --yes",
                "",
            ),
        ]
        for label, path, note in where:
            console.print(f"{label + ':':40} {path} {f'({note})' if note else ''}", highlight=False)
        problems = check_report(self)
        for problem in problems:
            console.print(f"[red]✗ {problem}[/]")
        if not problems:
            console.print(
                "[green]✓ abandonments, SMS and email sends, and recoveries: end to end[/]"
            )
        return 1 if problems else 0

    async def all_ready(self, http: aiohttp.ClientSession) -> bool:
        for process in self.processes:
            if process.ready_url is None:
                continue
            try:
                async with http.get(process.ready_url, timeout=aiohttp.ClientTimeout(2)) as r:
                    if r.status != 200:
                        return False
            except (aiohttp.ClientError, TimeoutError):
                return False
        return True

    def spawn(
        self, name: str, args: list[str], port_env: str | None = None, ready_path: str = "/readyz"
    ) -> Process:
        env = dict(self.env)
        url = None
        if port_env is not None:
            port = free_port()
            env[port_env] = str(port)
            url = f"http://127.0.0.1:{port}{ready_path}"
        process = Process(name, [*cartpulse(), *args], self.out / "logs" / f"{name}.log", url)
        process.start(env)
        self.processes.append(process)
        return process

    async def stop_processes(self) -> None:
        """SIGTERM to each (graceful: offsets committed), SIGKILL to what still runs after 20 s.

        Waits without blocking the loop: the senders may still be talking to the test servers
        that run on it.
        """
        for process in reversed(self.processes):
            if process.exited is None and process.popen is not None:
                with contextlib.suppress(ProcessLookupError):
                    process.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        # A child's exit sets no event here; polling every 0.2 s for at most 20 s is enough.
        while any(p.exited is None for p in self.processes) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        for process in self.processes:
            if process.exited is None and process.popen is not None:
                console.print(f"[yellow]{process.name} did not stop on SIGTERM: killed[/]")
                process.popen.kill()
                process.popen.wait()

    def write_messages(self) -> tuple[Path, Path]:
        sms = self.out / "sms-requests.jsonl"
        with sms.open("wb") as handle:
            for request in self.twilio.requests:
                handle.write(orjson.dumps(asdict(request)) + b"\n")
        emails = self.out / "emails"
        emails.mkdir(exist_ok=True)
        for n, mail in enumerate(self.smtp.messages, 1):
            (emails / f"{n:04d}-{mail.rcpt_tos[0]}.eml").write_bytes(mail.raw)
        return sms, emails


def demo_settings(out: Path, ts: int, twilio: TwilioTestServer, smtp: SmtpTestServer) -> Settings:
    """The demo's settings: its own topics, Redis keys, state and test servers.

    Whatever is not set here (Kafka and Redis addresses and credentials) comes from the
    caller's CARTPULSE_* environment, if set.
    """
    return load_settings(
        topic_prefix=f"demo-{ts}.",
        topic_partitions=4,
        data_dir=out / "state",
        clock="live",
        gap=timedelta(seconds=GAP_S),
        policy_file=POLICY,
        coupon_secret=secrets.token_hex(16),
        unsubscribe_secret=secrets.token_hex(16),
        click_secret=secrets.token_hex(16),  # keys the SMS short links' ids
        redis_key_prefix=f"demo-{ts}:",
        sender_group=f"demo-{ts}-senders",
        web_port=0,  # each process gets a free port of its own: Demo.spawn
        sender_http_port=0,
        twilio_api_base=twilio.base_url,
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_from=FROM_NUMBER,
        sms_rate=10,
        sms_burst=10,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security="starttls",
        smtp_username=smtp.username,
        smtp_password=smtp.password,
        smtp_ca_file=smtp.cert,
        email_from="Cartpulse Demo Store <shop@shop.example.com>",
        email_unsubscribe_url="https://shop.example.com/unsubscribe",
        email_unsubscribe_mailto="unsubscribe@shop.example.com",
    )


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own command
        [*cartpulse(), *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )


def check_report(demo: Demo) -> list[str]:
    """The issue's done-when: abandonments, sends on both channels, recoveries."""
    problems = []
    done = run_cli(demo.env, "report", "--json")
    rows = orjson.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else []
    abandonments = sum({r["flow"]: r["abandonments"] for r in rows}.values())
    recovered = sum(r["orders_recovered"] for r in rows)
    if abandonments == 0:
        problems.append("the report shows no abandonments")
    if recovered == 0:
        problems.append("the report shows no recoveries")
    for channel, reached in (("sms", demo.sms_created()), ("email", len(demo.smtp.messages))):
        sent = demo.tally.results_by(channel)["sent"]
        if sent == 0 or reached == 0:
            problems.append(f"no {channel} was sent ({sent} 'sent' results, {reached} received)")
    return problems


async def clean_redis(settings: Settings) -> None:
    """Delete the run's keys (ledger, rate limits, consent mirror); Redis down is no error."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    prefix = settings.effective_redis_key_prefix
    client = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    except (RedisError, OSError) as exc:
        console.print(f"[yellow]could not delete the demo's Redis keys {prefix}*: {exc}[/]")
    finally:
        await client.aclose()


async def live_part(ts: int, out: Path) -> int:
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("live_part must run as a task")
    # SIGTERM (make killed, CI timeout) ends the demo like Ctrl-C: through the cleanups below.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as cleanup:  # undone in reverse, also on errors
        cleanup.callback(shutil.rmtree, out / "tls", ignore_errors=True)
        cleanup.callback(shutil.rmtree, out / "state", ignore_errors=True)
        twilio = TwilioTestServer(ACCOUNT_SID, AUTH_TOKEN)
        await twilio.start()
        cleanup.push_async_callback(twilio.stop)
        (out / "tls").mkdir()
        cert, key = make_certificate(out / "tls")  # throwaway, self-signed
        smtp = SmtpTestServer(cert, key, password=secrets.token_hex(8))
        await smtp.start()
        cleanup.push_async_callback(smtp.stop)
        settings = demo_settings(out, ts, twilio, smtp)
        # The processes rebuild the same settings from CARTPULSE_* variables.
        env = dict(os.environ) | settings_env(settings)
        cleanup.push_async_callback(clean_redis, settings)
        demo = Demo(out, settings, env, twilio, smtp)
        cleanup.push_async_callback(demo.stop_processes)
        console.rule(
            f"[bold]cartpulse demo[/] — live mode, topics {settings.topic_prefix}*, files {out}"
        )
        console.print(
            f"Twilio test server {twilio.base_url} (account {ACCOUNT_SID[:6]}…), "
            f"SMTP test server 127.0.0.1:{smtp.port} (STARTTLS + AUTH, CA "
            f"{cert.name}); policy {POLICY.relative_to(ROOT)}; gap {GAP_S} s",
            highlight=False,
        )
        return await demo.show()
    raise AssertionError("unreachable")  # the exit stack does not swallow errors


def rees46_part(out: Path) -> None:
    console.rule("real data: the REES46 sample offline (cartpulse detect --gap 10m --flush)")
    target = out / "rees46-abandonments.jsonl"
    done = run_cli(
        dict(os.environ),
        "detect",
        "--input",
        str(REES46),
        "--gap",
        "10m",
        "--flush",
        "--output",
        str(target),
    )
    summary = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"
    console.print(f"{REES46.relative_to(ROOT)}: {summary}", highlight=False)
    console.print(f"abandonments written to {target.relative_to(ROOT)}", highlight=False)


def main() -> int:
    ts = int(time.time())
    out = ROOT / ".cartpulse" / f"demo-{ts}"
    started = time.monotonic()
    try:
        status = asyncio.run(live_part(ts, out))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, or SIGTERM
        console.print("[yellow]interrupted: everything the demo started is stopped[/]")
        return 130
    except RuntimeError as exc:
        console.print(f"[red]demo failed:[/] {exc}", highlight=False)
        return 1
    if REES46.exists():
        rees46_part(out)
    console.print(f"demo took {time.monotonic() - started:.0f} s", highlight=False)
    return status


if __name__ == "__main__":
    sys.exit(main())
