"""HELP answers with the store's name and support contact, per store sender identity."""

from __future__ import annotations

import pytest

from senders.messages.packs import Packs
from senders.messages.templates import Renderer
from senders.webhooks.help import help_replies
from streams.contract.errors import ConfigurationError
from streams.core.policy import parse_policy
from streams.runtime.policy_file import default_policy_text
from streams.runtime.settings import Settings
from tests.support.webhooks import inbound_form, post_signed, world

MUGS = """
[stores.mugs]
timezone = "Europe/Berlin"
brand = "Mugs & Co"
locale = "de"
support = "hilfe@mugs.example"
sms_from = "+4915155550100"
"""


def _replies(extra: str = MUGS, override: str = ""):  # type: ignore[no-untyped-def]
    policy = parse_policy(default_policy_text() + extra)
    return help_replies(policy, Renderer(Packs.of(Settings(), policy)), override)


def test_each_store_answers_help_in_its_language_with_its_name_and_support() -> None:
    replies = _replies()
    assert replies.for_message("+4915155550100", "") == (
        "Mugs & Co: Warenkorb-Erinnerungen per SMS. Es können Kosten für Nachrichten und Daten "
        "anfallen. Hilfe: hilfe@mugs.example. Antworten Sie STOP, um sich abzumelden."
    )
    default = (
        "Cartpulse Demo Store: cart reminders by SMS. Msg & data rates may apply. "
        "Help: help@shop.example.com. Reply STOP to opt out."
    )
    assert replies.for_message("+15005550006", "") == default  # not a store's number
    assert _replies(override="Shop: reply STOP to end.").for_message("+4915155550100", "") == (
        "Shop: reply STOP to end."
    )


def test_a_store_without_support_still_answers_with_its_name() -> None:
    text = _replies(MUGS.replace('support = "hilfe@mugs.example"\n', "")).for_message(
        "+4915155550100", ""
    )
    assert text.startswith("Mugs & Co: ") and "Hilfe" not in text and "STOP" in text


def test_a_help_template_that_cannot_render_stops_the_service(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "_help.en.sms.j2").write_text("{{ no_such_variable }}")
    policy = parse_policy(default_policy_text())
    with pytest.raises(ConfigurationError, match="the HELP reply of store 'default'"):
        help_replies(policy, Renderer(Packs(pack=tmp_path)))


async def test_help_sent_to_a_stores_number_gets_that_stores_answer() -> None:
    replies = _replies()
    async with world(help_reply=replies) as w:
        form = {**inbound_form("HELP"), "To": "+4915155550100"}
        answer = await post_signed(w, "/twilio/sms", form)
        assert answer.status == 200
        assert "Mugs &amp; Co: Warenkorb-Erinnerungen" in await answer.text()
        other = await post_signed(w, "/twilio/sms", inbound_form("INFO", sid="SM" + "b" * 32))
        assert "Cartpulse Demo Store: cart reminders" in await other.text()
        assert w.outbox.consents == []
