"""Each store's SMS go out under its own number or Messaging Service, limited per identity."""

from __future__ import annotations

from pydantic import SecretStr

from senders.adapters.providers import provider_for
from senders.adapters.twilio_sms import TwilioSms
from streams.core.policy import parse_policy
from streams.runtime.policy_file import default_policy_text
from streams.runtime.settings import Settings
from tests.senders.conftest import command

MG = "MG" + "b" * 32
STORES = f"""
[stores.mugs]
timezone = "Europe/London"
sms_from = "+447700900123"

[stores.kaffee]
timezone = "Europe/Berlin"
sms_from = "+4915155550100"
sms_messaging_service_sid = "{MG}"
"""
SETTINGS = Settings(
    twilio_account_sid="AC" + "0" * 32,
    twilio_auth_token=SecretStr("token"),
    twilio_from="+15005550006",
    click_secret=SecretStr("links"),
)


def _provider() -> TwilioSms:
    provider = provider_for(SETTINGS, "sms", parse_policy(default_policy_text() + STORES))
    assert isinstance(provider, TwilioSms)
    return provider


def test_a_store_sends_from_its_own_number_or_messaging_service() -> None:
    provider = _provider()
    for store, field, value in [
        ("mugs", "From", "+447700900123"),
        ("kaffee", "MessagingServiceSid", MG),  # the service wins over the number
        ("store-1", "From", "+15005550006"),  # not in the policy: the settings' number
    ]:
        cmd = command(store_id=store)
        form = provider.form(provider.prepare(cmd, 0.0), cmd, 0.0)
        assert form[field] == value, store
        assert {"From", "MessagingServiceSid"} & set(form) == {field}, store


def test_each_identity_has_its_own_rate_limit_and_the_account_one_is_shared() -> None:
    provider = _provider()
    mugs, kaffee, other = (provider.limits(command(store_id=s)) for s in ("mugs", "kaffee", "x"))
    assert mugs[0].key.endswith(":sender:+447700900123")
    assert kaffee[0].key.endswith(f":sender:{MG}")
    assert other[0].key.endswith(":sender:+15005550006")
    assert mugs[1].key == kaffee[1].key == other[1].key  # one account
