"""The SMS adapter's short links: rewritten in ``prepare`` (pure, before the segment count, as
the preview shows them), registered by ``stage`` before sending; and ``cartpulse policy
check``'s warnings about them."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from senders.adapters.providers import provider_for
from senders.adapters.twilio_sms import SmsMessage, TwilioSms
from senders.messages.short_links import MAX_LINK_CHARS, LinkRecord, short_id
from streams.cli.policy import run_check
from streams.contract.errors import ConfigurationError, InvalidRecord
from streams.core.policy import Policy
from streams.runtime.policy_file import load_policy
from streams.runtime.settings import Settings
from tests.senders.conftest import command

SECRET = "click-test-secret"
BASE = "https://s.shop.example/c/"
CART = (
    "https://shop.example.com/cart/recover?token=8f2c1e9a7b3d4c5e6f708192a3b4c5d6"
    "&utm_source=sms&utm_medium=cartpulse&utm_campaign=cart_sms_1"
)
OPT_OUT = "Reply STOP to opt out."


@dataclass
class Registry:
    registered: list[tuple[str, LinkRecord]] = field(default_factory=list)

    async def register(self, links: Sequence[tuple[str, LinkRecord]]) -> None:
        self.registered.extend(links)


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "twilio_account_sid": "AC" + "0" * 32,
        "twilio_auth_token": SecretStr("token"),
        "twilio_from": "+15005550006",
        "click_secret": SecretStr(SECRET),
    }
    return Settings(**(values | overrides))


def policy(base: str | None = BASE) -> Policy:
    shipped = load_policy()
    stores = {k: replace(s, short_link_base=base) for k, s in shipped.stores.items()}
    return replace(shipped, stores=stores)


def adapter(
    base: str | None = BASE, registry: Registry | None = None, **overrides: Any
) -> TwilioSms:
    made = provider_for(settings(**overrides), "sms", policy(base), registry)
    assert isinstance(made, TwilioSms)
    return made


def prepare(sms: TwilioSms, cart_url: str = CART, **fields: Any) -> SmsMessage:
    cmd = command(**fields)
    cmd = cmd.model_copy(update={"variables": {**cmd.variables, "cart_url": cart_url}})
    return sms.prepare(cmd, 1_900_000_000.0)


def test_every_link_is_short_and_the_sms_costs_one_segment_instead_of_two() -> None:
    long = prepare(adapter(base=None), command_id="cmd-1")
    short = prepare(adapter(), command_id="cmd-1")
    assert CART in long.body.text and long.body.segments == 2 and long.links == ()
    assert CART not in short.body.text and short.body.segments == 1
    [link] = short.links
    assert link.url == CART and len(link.short_url) <= MAX_LINK_CHARS
    assert link.short_url == f"{BASE}{short_id(SECRET.encode(), 'cmd-1', CART)}"
    assert re.findall(r"https?://\S+", short.body.text) == [link.short_url]
    # the opt-out line is the last line, as without short links
    assert short.body.text.endswith(f"\n{OPT_OUT}") and long.body.text.endswith(f"\n{OPT_OUT}")
    assert short.body.text.replace(link.short_url, CART) == long.body.text


def test_a_redelivered_command_is_rendered_with_the_same_short_link() -> None:
    sms = adapter()
    first = prepare(sms, command_id="cmd-7")
    assert prepare(adapter(), command_id="cmd-7") == first  # another replica, too
    assert prepare(sms, command_id="cmd-8").links != first.links


def test_the_segment_limit_applies_to_the_sms_as_sent() -> None:
    # Over one segment as written, one once shortened.
    short = prepare(adapter(sms_max_segments=1))
    assert short.body.segments == 1
    with pytest.raises(InvalidRecord, match="2 GSM-7 segments, over 1"):
        prepare(adapter(base=None, sms_max_segments=1))


async def test_stage_registers_each_link_with_its_command_and_expiry() -> None:
    registry = Registry()
    sms = adapter(registry=registry)
    cmd = command(command_id="cmd-3")
    cmd = cmd.model_copy(update={"variables": {**cmd.variables, "cart_url": CART}})
    message = sms.prepare(cmd, 1_900_000_000.0)
    await sms.stage(message, cmd, 1_900_000_000.0)
    [(link_id, record)] = registry.registered
    assert f"{BASE}{link_id}" == message.links[0].short_url
    assert record == LinkRecord(
        CART, cmd.customer_id, cmd.store_id, "cmd-3", "sms", (1_900_000_000 + 30 * 86_400) * 1000
    )
    await sms.stage(prepare(adapter(base=None)), cmd, 1_900_000_000.0)  # no links: nothing
    assert len(registry.registered) == 1
    with pytest.raises(RuntimeError, match="no link registry"):
        await adapter().stage(message, cmd, 1_900_000_000.0)


def test_short_links_need_the_click_key() -> None:
    with pytest.raises(ConfigurationError, match="CARTPULSE_CLICK_SECRET"):
        provider_for(settings(click_secret=SecretStr("")), "sms", policy())
    provider_for(settings(click_secret=SecretStr("")), "sms", policy(None))  # none: no key


def _check(capsys: pytest.CaptureFixture[str], path: Path, **overrides: Any) -> str:
    args = argparse.Namespace(file=path, templates_dir=None, strict=False)
    assert run_check(args, Settings(**overrides)) == 0  # type: ignore[arg-type]
    return capsys.readouterr().err


def test_policy_check_warns_of_sms_without_a_short_link_base_and_of_a_missing_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = (Path(__file__).parents[2] / "streams/policies/default.toml").read_text()
    with_base = tmp_path / "with.toml"
    with_base.write_text(shipped)
    without = tmp_path / "without.toml"
    without.write_text(re.sub(r"(?m)^short_link_base = .*$", "", shipped))
    assert "short_link_base" not in _check(capsys, with_base, click_secret=SecretStr("k"))
    assert "CARTPULSE_CLICK_SECRET is not set" in _check(capsys, with_base)
    warned = _check(capsys, without, click_secret=SecretStr("k"))
    assert "stores.default: no short_link_base: its SMS carry their links as written" in warned
