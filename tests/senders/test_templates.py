"""Rendering: the shipped templates, the sandbox, escaping, SMS composition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from senders.adapters.twilio_sms import TwilioSms
from senders.core.keys import Keys
from senders.messages.packs import Packs, StorePack
from senders.messages.templates import DEFAULT_DIRECTORY, Renderer, compose_sms
from streams.contract.commands import SendCommand
from streams.contract.errors import InvalidRecord
from streams.runtime.settings import Settings
from tests.senders.conftest import command
from tests.support.flow_messages import FLOW_EMAILS, FLOW_SMS

PRODUCT_MESSAGES = ("browse", "price_drop", "back_in_stock")

CART: dict[str, Any] = {
    "first_name": "Ann",
    "store_name": "Mugs & Co",
    "store_postal_address": "Mugs & Co, 1 Clay Lane, Stoke-on-Trent ST1 1AA, UK",
    "store_support": "help@mugs.example",
    "cart_url": "https://shop.example.com/cart/1",
    "unsubscribe_url": "https://shop.example.com/u?token=t",
    "cart_items": [
        {"product_id": "p1", "name": "Blue Mug", "quantity": 2, "price": "12.00"},
        {"product_id": "p2", "name": "Red Mug", "quantity": 1},
    ],
    "cart_value": "24.00",
    "cart_currency": "GBP",
    "timezone": "Europe/London",
    "coupon": {"code": "SAVE10-X1", "percent": 10},
    "viewed_products": [
        {"product_id": "p3", "name": "Teapot", "url": "https://shop.example.com/p3"}
    ],
    "product": {"product_id": "p3", "name": "Teapot", "url": "https://shop.example.com/p3"},
    "product_url": "https://shop.example.com/p3",
}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.mark.parametrize("locale", ["en", "de", "fr", "es"])
def test_every_shipped_template_renders(renderer: Renderer, locale: str) -> None:
    names = {p.name.split(".")[0] for p in DEFAULT_DIRECTORY.glob("[!_]*.j2")}
    assert {"cart_sms_1", "browse_sms_1", "cart_email_1", "cart_email_2", "browse_email_1"} <= names
    assert set(FLOW_EMAILS) | set(FLOW_SMS) <= names
    for name in names:
        # a message about one product names it; a cart message its first line
        product = "Teapot" if name.startswith(PRODUCT_MESSAGES) else "Blue Mug"
        if renderer.has(name, locale, "sms"):
            text = renderer.render_sms(name, locale, CART)
            assert ("Ann" in text or product in text) and "STOP" not in text
        else:
            for part in ("subject", "txt", "html"):  # a pack is whole: no part falls back
                assert (DEFAULT_DIRECTORY / f"{name}.{locale}.{part}.j2").is_file()
            email = renderer.render_email(name, locale, CART)
            assert email.subject and email.text.strip() and f'<html lang="{locale}"' in email.html
            assert "Ann" in email.text and product in email.text and product in email.html


def test_cart_sms_reads_well(renderer: Renderer) -> None:
    text = renderer.render_sms("cart_sms_1", "en", CART)
    assert text == (
        "Mugs & Co: Hi Ann, you left Blue Mug and 1 more in your cart. "
        "Finish your order: https://shop.example.com/cart/1"
    )


def test_incentive_email_shows_the_coupon(renderer: Renderer) -> None:
    email = renderer.render_email("cart_email_2", "en", CART)
    assert email.subject == "10% off your cart, Ann"
    assert "SAVE10-X1" in email.text and "SAVE10-X1" in email.html


def test_prices_and_total_print_as_money(renderer: Renderer) -> None:
    email = renderer.render_email("cart_email_1", "en", CART)
    assert "Blue Mug | Qty: 2 | £24.00" in email.text and "Total: £24.00" in email.text
    assert "£24.00" in email.html and "12.00 GBP" not in email.html
    german = renderer.render_email("cart_email_1", "de", CART)
    assert "Gesamtsumme: 24,00\u00a0£" in german.text


@pytest.mark.parametrize("template", ["cart_email_1", "cart_email_2", "browse_email_1"])
def test_every_email_shows_the_postal_address_and_support(
    renderer: Renderer, template: str
) -> None:
    email = renderer.render_email(template, "en", CART)
    assert "Mugs &amp; Co, 1 Clay Lane, Stoke-on-Trent ST1 1AA, UK" in email.html
    assert email.text.rstrip().endswith("Mugs & Co, 1 Clay Lane, Stoke-on-Trent ST1 1AA, UK")
    assert "help@mugs.example" in email.html and "help@mugs.example" in email.text


@pytest.mark.parametrize("address", [None, "", "   "])
def test_no_email_without_a_postal_address(renderer: Renderer, address: str | None) -> None:
    variables = {k: v for k, v in CART.items() if k != "store_postal_address"}
    if address is not None:
        variables["store_postal_address"] = address
    with pytest.raises(InvalidRecord, match=r"^missing_postal_address: "):
        renderer.render_email("cart_email_1", "en", variables)


def test_the_second_cart_email_claims_no_expiry_without_a_coupon(renderer: Renderer) -> None:
    plain = {k: v for k, v in CART.items() if k != "coupon"}
    email = renderer.render_email("cart_email_2", "en", plain)
    assert email.subject == "Still thinking about your cart, Ann?"
    assert "expire" not in (email.subject + email.text + email.html).lower()


def test_html_is_escaped_text_is_not(renderer: Renderer) -> None:
    hostile = {**CART, "first_name": "<script>alert(1)</script>"}
    email = renderer.render_email("cart_email_1", "en", hostile)
    assert "<script>" not in email.html and "&lt;script&gt;" in email.html
    assert "<script>" in email.text  # plain text is not HTML: nothing to escape


def test_locale_falls_back(renderer: Renderer) -> None:
    assert Packs().locales("de-AT", "default") == ["de-AT", "de", "en"]
    assert renderer.render_sms("cart_sms_1", "de-AT", CART).startswith("Mugs & Co: Hallo Ann")
    assert renderer.render_sms("cart_sms_1", "fr-CA", CART).startswith("Mugs & Co : Bonjour Ann")
    assert renderer.render_sms("cart_sms_1", "pt", CART).startswith("Mugs & Co: Hi Ann")


@pytest.mark.parametrize("locale", ["en", "de", "fr", "es"])
@pytest.mark.parametrize("template", ["cart_sms_1", "browse_sms_1"])
def test_shipped_sms_fit_one_gsm7_segment_pair(
    renderer: Renderer, template: str, locale: str
) -> None:
    """Each shipped SMS, with its opt-out line, stays in GSM-7 (accents included) and 2 segments."""
    body = renderer.sms(template, locale, CART)
    assert body.text.count("\n") == 1 and "STOP" in body.text.splitlines()[1]
    assert body.encoding.encoding == "GSM-7", body.text
    assert body.segments <= 2
    if template == "browse_sms_1":
        assert "Teapot" in body.text and "https://shop.example.com/p3" in body.text


def test_a_missing_required_variable_is_invalid(renderer: Renderer) -> None:
    with pytest.raises(InvalidRecord, match="cart_url"):
        renderer.render_sms("cart_sms_1", "en", {"first_name": "Ann"})


def test_unknown_templates_are_invalid(renderer: Renderer) -> None:
    with pytest.raises(InvalidRecord, match="no template"):
        renderer.render_sms("nope", "en", CART)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cart_url.__class__.__init__.__globals__ }}",
        "{% for x in range(10**9) %}{% endfor %}",
    ],
)
def test_the_sandbox_stops_template_attacks(tmp_path: Path, source: str) -> None:
    (tmp_path / "evil.en.sms.j2").write_text(source)
    with pytest.raises(InvalidRecord):
        Renderer(tmp_path).render_sms("evil", "en", CART)


def test_opt_out_line_is_appended_by_rule_not_by_content() -> None:
    body = compose_sms("Your cart is waiting", "Reply STOP to opt out.")
    assert body.text == "Your cart is waiting\nReply STOP to opt out."
    # A body that already says STOP still gets the line: the rule never reads the content.
    text = compose_sms("Text STOP to quit", "Reply STOP to opt out.").text
    assert text == "Text STOP to quit\nReply STOP to opt out."
    with pytest.raises(InvalidRecord, match="opt-out"):
        compose_sms("Hi", "")
    with pytest.raises(InvalidRecord, match="opt-out"):
        compose_sms("Hi", "  \n ")


SETTINGS = Settings(
    twilio_account_sid="AC" + "0" * 32,
    twilio_auth_token=SecretStr("token"),
    twilio_from="+14155550000",
)


def _sms_as_sent(command: SendCommand) -> str:
    """The body the SMS sender would post, through its own prepare step."""
    return TwilioSms(SETTINGS, Renderer(), Keys()).prepare(command, 0.0).body.text


@pytest.mark.parametrize(
    ("product", "cart_url"),
    [
        ("Nonstop Espresso Maker", "https://shop.example.com/cart/1"),
        ("Stopwatch", "https://shop.example.com/cart/1"),
        ("Blue Mug", "https://shop.example.com/stop-and-shop/cart/1"),
    ],
)
def test_a_cart_that_mentions_stop_still_gets_the_opt_out_line(product: str, cart_url: str) -> None:
    variables = {
        "first_name": "Ann",
        "store_name": "Mugs & Co",
        "cart_url": cart_url,
        "cart_items": [{"product_id": "p1", "name": product, "quantity": 1}],
    }
    text = _sms_as_sent(command(variables=variables))
    assert text.endswith("\nReply STOP to opt out.")
    assert product in text


@pytest.mark.parametrize(
    ("locale", "line"),
    [
        ("de", "Antworten Sie STOP, um sich abzumelden."),
        ("de-AT", "Antworten Sie STOP, um sich abzumelden."),
        ("fr", "Répondez STOP pour vous désabonner."),
        ("es", "Responde STOP para darte de baja."),
        ("en", "Reply STOP to opt out."),
        ("pt-BR", "Reply STOP to opt out."),  # no pack for pt: the default locale's line
    ],
)
def test_the_opt_out_line_speaks_the_shoppers_language(locale: str, line: str) -> None:
    text = _sms_as_sent(command(locale=locale))
    assert text.endswith("\n" + line)
    assert text.count("STOP") == 1
    if locale.startswith("de"):
        assert "Reply STOP" not in text and text.startswith("Cartpulse Shop: Hallo Ann")


def test_every_shipped_sms_locale_has_an_opt_out_line(renderer: Renderer) -> None:
    locales = {p.name.split(".")[1] for p in DEFAULT_DIRECTORY.glob("*.sms.j2")}
    assert {"en", "de", "fr", "es"} <= locales
    for locale in locales:
        line = renderer.render_sms_opt_out(locale, CART)
        assert "STOP" in line and "\n" not in line


def test_sms_cost_is_known_before_sending() -> None:
    body = compose_sms("It\u2019s waiting \u2013 \u201cBlue Mug\u201d", "Reply STOP to opt out.")
    assert body.encoding.encoding == "GSM-7" and body.segments == 1  # smart encoding
    emoji = compose_sms("Your cart 🛒 " + "x" * 60, "Reply STOP to opt out.", smart=True)
    assert emoji.encoding.encoding == "UCS-2" and emoji.segments == 2
    with pytest.raises(InvalidRecord, match="segments"):
        compose_sms("x" * 500, "Reply STOP to opt out.", max_segments=3)
    with pytest.raises(InvalidRecord, match="1600"):
        compose_sms("x" * 1601, "Reply STOP to opt out.", max_segments=24)
    with pytest.raises(InvalidRecord, match="empty"):
        compose_sms("   ", "Reply STOP to opt out.")


def test_a_store_folder_and_a_pack_change_the_words(tmp_path: Path) -> None:
    mine, pack = tmp_path / "mine", tmp_path / "pack"
    mine.mkdir()
    pack.mkdir()
    (mine / "cart_sms_1.en.sms.j2").write_text("{{ store_name }}: your cart {{ cart_url }}")
    renderer = Renderer(Packs(pack=pack, stores={"s1": StorePack(mine, "en")}))
    assert renderer.sms("cart_sms_1", "en", CART, store_id="s1").text == (
        "Mugs & Co: your cart https://shop.example.com/cart/1\nReply STOP to opt out."
    )
    # Another store gets the shipped text; a German shopper of s1 the shipped German first.
    assert renderer.render_sms("cart_sms_1", "en", CART, "s2").startswith("Mugs & Co: Hi Ann")
    assert renderer.render_sms("cart_sms_1", "de", CART, "s1").startswith("Mugs & Co: Hallo")
    # The deployment's pack sits between the store's folder and the shipped templates.
    (pack / "_opt_out.en.sms.j2").write_text("Text STOP to end.")
    fresh = Renderer(Packs(pack=pack, stores={"s1": StorePack(mine, "en")}))
    assert fresh.sms("cart_sms_1", "en", CART, store_id="s2").text.endswith("\nText STOP to end.")


def test_the_sms_sender_renders_from_the_commands_store_folder(tmp_path: Path) -> None:
    from senders.adapters.providers import provider_for
    from streams.runtime.policy_file import default_policy_text, load_policy

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "cart_sms_1.en.sms.j2").write_text("Kaffee: {{ cart_url }}")
    source = tmp_path / "policy.toml"
    source.write_text(
        default_policy_text()
        + '\n[stores.kaffee]\ntimezone = "Europe/Berlin"\ntemplates = "mine"\n'
    )
    settings = SETTINGS.model_copy(update={"click_secret": SecretStr("links")})
    provider = provider_for(settings, "sms", load_policy(source))
    sms = command(store_id="kaffee")
    assert provider.prepare(sms, 0.0).body.text.startswith("Kaffee: https://")
    other = command()  # store-1: not in the policy, so the default store's (shipped) texts
    assert provider.prepare(other, 0.0).body.text.startswith("Cartpulse Shop: Hi Ann")


def test_a_command_marked_told_within_30_days_goes_without_the_line() -> None:
    told = command(variables={**command().variables, "sms_opt_out_notice": False})
    text = _sms_as_sent(told)
    assert "STOP" not in text and text.endswith(told.variables["cart_url"])
    # Anything but an explicit false keeps the line (a missing or odd value is no licence).
    for value in (True, "false", 0, None):
        odd = command(variables={**command().variables, "sms_opt_out_notice": value})
        assert _sms_as_sent(odd).endswith("\nReply STOP to opt out."), value
