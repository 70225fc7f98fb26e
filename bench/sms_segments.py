"""Segments per SMS on the demo's traffic, with the store's short links and without.

The demo's traffic, offline: ``cartpulse simulate`` with ``make demo``'s shape (seed, shoppers,
rate, pauses and breaks, its first ``SECONDS`` of event time), the simulated audience's profiles
and consents as files, ``cartpulse detect --gap 15s --flush``, then ``cartpulse journeys`` with
the demo's policy. Every SMS command it writes is rendered by the SMS sender's own adapter
(``senders.adapters.providers.provider_for`` → ``TwilioSms.prepare``: template, opt-out line, link
rewrite, segment count) twice: with the policy as it is and with the stores'
``short_link_base`` removed. Nothing is sent.

The simulator's links are short already (``https://shop.example/cart/<session>``, 33
characters), shorter than any real store's. So the same commands are rendered once more with
their cart link as a store platform writes it: Shopify's abandoned-checkout recovery link
(``<store url>/<shop id>/checkouts/<token>/recover?key=<key>``) with the UTM tags a store adds
to attribute the visit (184 characters; the token and key derived from the command id).

Prints a markdown section (``make bench`` puts it into docs/BENCHMARKS.md).
Usage: ``python bench/sms_segments.py [--seconds 110]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402

from senders.adapters.providers import provider_for  # noqa: E402
from senders.adapters.twilio_sms import SmsMessage  # noqa: E402
from senders.messages.short_links import MAX_LINK_CHARS  # noqa: E402
from senders.runtime.preview import preview_settings  # noqa: E402
from streams.contract.commands import SendCommand, parse_command  # noqa: E402
from streams.contract.topics import Topic  # noqa: E402
from streams.core.policy import Policy  # noqa: E402
from streams.offline.audience import AudienceConfig, audience  # noqa: E402
from streams.offline.simulate import SimulationConfig, events_within  # noqa: E402
from streams.runtime.policy_file import load_policy  # noqa: E402
from streams.runtime.settings import Settings  # noqa: E402

POLICY = ROOT / "deploy/local/demo-policy.toml"
START = "2026-01-05T15:00:00Z"
START_MS = 1_767_625_200_000
# make demo's knobs (deploy/local/demo.py): DEMO_RATE, DEMO_SHOPPERS, DEMO_SEED and its shape.
RATE, SHOPPERS, SEED = 40.0, 100, 6
MEAN_PAUSE_S, BREAK_MINUTES, BREAK_PROBABILITY, GAP = 2.0, (0.5, 1.5), 0.1, "15s"


@dataclass(frozen=True, slots=True)
class Tally:
    messages: int
    segments: int
    by_segments: Counter[int]
    encodings: Counter[str]
    characters: int
    longest_link: int

    @property
    def per_sms(self) -> float:
        return self.segments / self.messages if self.messages else 0.0


def demo_shape() -> SimulationConfig:
    """``make demo``'s simulation (deploy/local/demo.py), with room for any duration."""
    return SimulationConfig(
        events=10**7,
        rate=RATE,
        shoppers=SHOPPERS,
        start_ms=START_MS,
        seed=SEED,
        mean_pause_s=MEAN_PAUSE_S,
        break_minutes=BREAK_MINUTES,
        break_probability=BREAK_PROBABILITY,
    )


def cartpulse(env: dict[str, str], *args: str) -> None:
    exe = Path(sys.executable).with_name("cartpulse")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "streams.cli"]
    subprocess.run([*command, *args], env=env, cwd=ROOT, check=True, capture_output=True)


def demo_sms_commands(work: Path, seconds: float) -> list[SendCommand]:
    """The SMS commands ``cartpulse journeys`` writes for the demo's traffic."""
    env = dict(os.environ) | {"CARTPULSE_COUPON_SECRET": "bench-coupon-secret"}
    events, found, commands = work / "events.jsonl", work / "abandonments.jsonl", work / "cmd"
    shape = ["--rate", str(RATE), "--shoppers", str(SHOPPERS), "--seed", str(SEED)]
    shape += ["--mean-pause", str(MEAN_PAUSE_S), "--break-probability", str(BREAK_PROBABILITY)]
    shape += ["--break-minutes", *map(str, BREAK_MINUTES)]
    count = str(events_within(demo_shape(), seconds))
    cartpulse(env, "simulate", "--events", count, "--start", START, *shape, "--output", str(events))
    people = AudienceConfig(SHOPPERS, START_MS - 86_400_000, SEED)
    files = {Topic.CUSTOMERS: work / "customers.jsonl", Topic.CONSENTS: work / "consents.jsonl"}
    handles = {topic: path.open("wb") for topic, path in files.items()}
    for record in audience(people):
        handles[record.topic].write(orjson.dumps(record.value) + b"\n")
    for handle in handles.values():
        handle.close()
    cartpulse(
        env, "detect", "--input", str(events), "--gap", GAP, "--flush", "--output", str(found)
    )
    cartpulse(
        env, "journeys", "--abandonments", str(found), "--orders", str(events),
        "--customers", str(files[Topic.CUSTOMERS]), "--consents", str(files[Topic.CONSENTS]),
        "--policy", str(POLICY), "--output", str(commands / "commands.jsonl"),
    )  # fmt: skip
    lines = (commands / "commands.jsonl").read_bytes().splitlines()
    return [c for c in map(parse_command, filter(None, lines)) if c.channel == "sms"]


def render(commands: list[SendCommand], settings: Settings, policy: Policy) -> Tally:
    provider = provider_for(settings, "sms", policy)
    sizes: Counter[int] = Counter()
    encodings: Counter[str] = Counter()
    characters = longest = 0
    for command in commands:
        now = (command.not_before or command.created_at).timestamp()
        message = provider.prepare(command, now)
        assert isinstance(message, SmsMessage)
        sizes[message.body.segments] += 1
        encodings[message.body.encoding.encoding] += 1
        characters += len(message.body.text)
        longest = max([longest, *(len(link.short_url) for link in message.links)])
    total = sum(n * count for n, count in sizes.items())
    return Tally(len(commands), total, sizes, encodings, characters, longest)


def as_a_store_links(command: SendCommand, store_url: str) -> SendCommand:
    """``command`` with its cart link as a Shopify store's recovery link, UTM-tagged."""
    token = hashlib.sha256(command.command_id.encode()).hexdigest()
    shop_id = int(token[:8], 16) % 10**11
    cart = (
        f"{store_url}/{shop_id:011d}/checkouts/{token[:32]}/recover?key={token[32:]}"
        f"&utm_source=cartpulse&utm_medium=sms&utm_campaign={command.template}"
    )
    variables = dict(command.variables)
    if "cart_url" in variables:
        variables["cart_url"] = cart
    return command.model_copy(update={"variables": variables})


def without_short_links(policy: Policy) -> Policy:
    stores = {k: replace(s, short_link_base=None) for k, s in policy.stores.items()}
    return replace(policy, stores=stores)


def section(seconds: float) -> str:
    policy = load_policy(POLICY)
    settings = preview_settings(Settings(click_secret=SecretStr("bench-click-secret")))
    with tempfile.TemporaryDirectory(prefix="cartpulse-sms-") as tmp:
        work = Path(tmp)
        (work / "cmd").mkdir()
        commands = demo_sms_commands(work, seconds)
    before = render(commands, settings, without_short_links(policy))
    after = render(commands, settings, policy)
    store_url = policy.store("default").url or "https://shop.example.com"
    real = [as_a_store_links(c, store_url) for c in commands]
    real_before = render(real, settings, without_short_links(policy))
    real_after = render(real, settings, policy)
    long_link = max(len(c.variables.get("cart_url", "")) for c in real)
    bases = sorted({s.short_link_base for s in policy.stores.values() if s.short_link_base})

    def row(name: str, t: Tally) -> str:
        spread = ", ".join(f"{n}: {t.by_segments[n]}" for n in sorted(t.by_segments))
        encodings = ", ".join(f"{e} {n}" for e, n in sorted(t.encodings.items()))
        return (
            f"| {name} | {t.messages} | {t.segments} | **{t.per_sms:.2f}** | {spread} | "
            f"{t.characters / max(t.messages, 1):.0f} | {encodings} |"
        )

    def saved(was: Tally, now: Tally) -> str:
        return f"{1 - now.segments / was.segments:.0%}" if was.segments else "-"

    short = f"short (`{', '.join(bases) or 'none'}`)"
    return (
        "| the demo's SMS, links | SMS | segments | segments per SMS | SMS by segments "
        "| characters per SMS | encoding |\n|---|---|---|---|---|---|---|\n"
        + row("simulator's links as written (no `short_link_base`)", before)
        + "\n"
        + row(f"simulator's links, {short}", after)
        + "\n"
        + row(f"store recovery links ({long_link} characters) as written", real_before)
        + "\n"
        + row(f"store recovery links, {short}", real_after)
        + f"\n\nFewer segments with short links: {saved(before, after)} with the simulator's "
        f"links, {saved(real_before, real_after)} with a store's; the longest short link is "
        f"{after.longest_link} characters (at most {MAX_LINK_CHARS}). The simulator's links "
        "(33 characters) are shorter than a short link, so there short links cost characters "
        "and save nothing but still make clicks visible. Measured offline on `make demo`'s traffic "
        f"(`cartpulse simulate` seed {SEED}, {SHOPPERS} shoppers, its first {seconds:.0f} s; "
        f"`cartpulse detect --gap {GAP} --flush`; `cartpulse journeys` with "
        f"{POLICY.relative_to(ROOT)}), every SMS command rendered by the SMS sender's adapter "
        "(`TwilioSms.prepare`, as `cartpulse preview` does) with the policy's short link base "
        "and without it (`bench/sms_segments.py`)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=110.0, help="of demo traffic (110)")
    print(section(parser.parse_args().seconds))  # noqa: T201


if __name__ == "__main__":
    main()
