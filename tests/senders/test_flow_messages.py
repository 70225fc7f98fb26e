"""What the shipped messages say about products: the new flows' emails and SMS in every
locale, and in every message a lower price struck beside the new one and "only a few left"
exactly when the command's fields say so, never otherwise."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from pydantic import SecretStr

from senders.adapters.providers import provider_for
from senders.adapters.twilio_sms import TwilioSms
from senders.messages.short_links import MAX_LINK_CHARS
from senders.messages.templates import DEFAULT_DIRECTORY, RenderedEmail, Renderer
from streams.runtime.policy_file import load_policy
from streams.runtime.settings import Settings
from tests.senders.conftest import command
from tests.support.flow_messages import (
    FLOW_EMAILS,
    FLOW_SMS,
    LOCALES,
    POSTAL_ADDRESS,
    SHOPPERS,
    SUPPORT,
    UNSUBSCRIBE_URL,
    variables,
    without,
)

NBSP = "\u00a0"
EMAILS = ("cart_email_1", "cart_email_2", "browse_email_1", *FLOW_EMAILS)
CART_EMAILS = ("cart_email_1", "cart_email_2", "checkout_email_1", "cart_email_vip_1")
# The old and the new price of the two mugs (a line shows the price of its quantity).
MUGS = {
    "en": ("now $32.00 (was $36.00)", "was <s", "$36.00"),
    "de": (f"jetzt 32,00{NBSP}€ (statt 36,00{NBSP}€)", "statt <s", f"36,00{NBSP}€"),
    "fr": (f"désormais 32,00{NBSP}€ (au lieu de 36,00{NBSP}€)", "au lieu de <s", f"36,00{NBSP}€"),
    "es": (f"ahora 32,00{NBSP}€ (antes 36,00{NBSP}€)", "antes <s", f"36,00{NBSP}€"),
}
LOW_STOCK = {
    "en": "Only a few left",
    "de": "Nur noch wenige verfügbar",
    "fr": "Plus que quelques pièces",
    "es": "Quedan pocas unidades",
}
WAS_WORDS = re.compile(r"\b(was|statt|au lieu de|antes) [$\d]")  # a word before an old price
DROP_CLAIMS = re.compile(r"price drop|costs less|günstiger|moins cher|baisse|bajad|bajado", re.I)
BACK_CLAIMS = re.compile(r"back in stock|wieder da|wieder auf Lager|de retour|disponible", re.I)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(DEFAULT_DIRECTORY)


def render(renderer: Renderer, template: str, locale: str, values: dict[str, Any]) -> RenderedEmail:
    return renderer.render_email(template, SHOPPERS[locale].locale, values)


def struck(html: str) -> list[str]:
    """The struck-through amounts of an HTML part."""
    return re.findall(r"<s\b[^>]*>(.*?)</s>", html)


# -- the new flows' emails ------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", FLOW_EMAILS)
def test_every_flow_email_renders_in_every_locale(
    renderer: Renderer, template: str, locale: str
) -> None:
    values = variables(template, locale)
    email = render(renderer, template, locale, values)
    assert email.subject and "\n" not in email.subject and "{" not in email.subject
    assert f'<html lang="{SHOPPERS[locale].locale}"' in email.html
    for part in (email.html, email.text):
        assert POSTAL_ADDRESS in part and SUPPORT in part
        assert UNSUBSCRIBE_URL.split("?")[0] in part
        assert "{{" not in part and "{%" not in part
    lines = values["cart_items"] or [values["product"]]
    for item in lines:
        assert item["name"] in email.text and item["name"] in email.html
        assert f'href="{item["url"]}"' in email.html
        assert re.search(rf'<img [^>]*src="{re.escape(item["image_url"])}"[^>]*>', email.html)
        assert re.search(rf'alt="{re.escape(item["name"])}"', email.html)
    for image in re.findall(r"<img\b[^>]*>", email.html):
        assert re.search(r'\balt="[^"]+"', image), image


@pytest.mark.parametrize("locale", LOCALES)
def test_the_checkout_email_leads_back_to_the_cart_and_offers_help(
    renderer: Renderer, locale: str
) -> None:
    email = render(renderer, "checkout_email_1", locale, variables("checkout_email_1", locale))
    assert "https://shop.example.com/cart/c-1" in email.text
    # the support contact is said once, in the message's own reassurance line
    assert email.text.count(SUPPORT) == 1
    assert email.html.count(f'href="mailto:{SUPPORT}"') == 1
    without_support = {**variables("checkout_email_1", locale)}
    del without_support["store_support"]
    plain = render(renderer, "checkout_email_1", locale, without_support)
    assert "mailto:" not in plain.html and SUPPORT not in plain.text


@pytest.mark.parametrize("locale", LOCALES)
def test_a_price_drop_email_shows_the_old_price_struck_and_the_new_one(
    renderer: Renderer, locale: str
) -> None:
    email = render(renderer, "price_drop_email_1", locale, variables("price_drop_email_1", locale))
    old, new = ("$89.00", "$79.00") if locale == "en" else (f"89,00{NBSP}€", f"79,00{NBSP}€")
    assert struck(email.html) == [old]
    assert new in email.html and new.replace(NBSP, " ") in email.subject
    assert DROP_CLAIMS.search(email.subject + email.text)
    assert re.search(rf"\(\w+(?: \w+)* {re.escape(old)}\)", email.text), email.text


@pytest.mark.parametrize("locale", LOCALES)
def test_a_price_drop_email_claims_no_drop_the_command_does_not_show(
    renderer: Renderer, locale: str
) -> None:
    """Prices can rise again before the step is due: the engine then sends no ``was_price``,
    and the email says nothing of a lower price."""
    values = variables("price_drop_email_1", locale, was=False)
    email = render(renderer, "price_drop_email_1", locale, values)
    assert not DROP_CLAIMS.search(email.subject + email.text + email.html)
    assert struck(email.html) == [] and not WAS_WORDS.search(email.text)
    assert "Gooseneck Kettle" in email.text


@pytest.mark.parametrize("locale", LOCALES)
def test_back_in_stock_says_so_only_about_a_product_the_command_has(
    renderer: Renderer, locale: str
) -> None:
    values = variables("back_in_stock_email_1", locale, low_stock=False)
    email = render(renderer, "back_in_stock_email_1", locale, values)
    assert BACK_CLAIMS.search(email.subject + email.text)
    assert LOW_STOCK[locale] not in email.text + email.html
    few = render(
        renderer, "back_in_stock_email_1", locale, variables("back_in_stock_email_1", locale)
    )
    assert few.text.count(LOW_STOCK[locale]) == 1 and few.html.count(LOW_STOCK[locale]) == 1
    gone = {k: v for k, v in values.items() if k not in ("product", "product_url")}
    gone["viewed_products"] = []  # out of stock again: the engine leaves it out
    nothing = render(renderer, "back_in_stock_email_1", locale, gone)
    assert not BACK_CLAIMS.search(nothing.subject + nothing.text + nothing.html)


@pytest.mark.parametrize("locale", LOCALES)
def test_the_vip_email_is_the_cart_in_a_personal_tone(renderer: Renderer, locale: str) -> None:
    values = variables("cart_email_vip_1", locale)
    email = render(renderer, "cart_email_vip_1", locale, values)
    assert SHOPPERS[locale].first_name in email.subject
    assert values["cart_url"] in email.text and email.text.count(SUPPORT) == 1
    assert ("$108.50" if locale == "en" else f"108,50{NBSP}€") in email.text


# -- honest product details in every email ---------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", CART_EMAILS)
def test_a_lower_price_is_struck_beside_the_new_one_with_words_to_read(
    renderer: Renderer, template: str, locale: str
) -> None:
    email = render(renderer, template, locale, variables(template, locale))
    text_form, html_word, old = MUGS[locale]
    assert text_form in email.text
    assert struck(email.html) == [old]  # only the line whose price dropped
    # a screen reader (and a client without CSS) reads "was €36.00", not two bare prices
    assert html_word in email.html


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", EMAILS)
def test_no_strike_and_no_scarcity_unless_the_command_says_so(
    renderer: Renderer, template: str, locale: str
) -> None:
    email = render(
        renderer, template, locale, variables(template, locale, was=False, low_stock=False)
    )
    assert struck(email.html) == []
    assert "<s>" not in email.html and not WAS_WORDS.search(email.text)
    assert LOW_STOCK[locale] not in email.text + email.html


@pytest.mark.parametrize("flag", ["true", 1, "yes", None])
def test_only_a_true_low_stock_speaks_of_scarcity(renderer: Renderer, flag: object) -> None:
    values = variables("cart_email_1", "en", low_stock=False)
    values["cart_items"] = [{**item, "low_stock": flag} for item in values["cart_items"]]
    email = render(renderer, "cart_email_1", "en", values)
    assert "Only a few left" not in email.text + email.html


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", CART_EMAILS)
def test_only_the_line_running_low_says_so(renderer: Renderer, template: str, locale: str) -> None:
    email = render(renderer, template, locale, variables(template, locale))
    assert email.html.count(LOW_STOCK[locale]) == 1
    towel = email.text.split("Linen Tea Towel", 1)[1].split("\n- ", 1)[0]
    assert LOW_STOCK[locale] in towel


@pytest.mark.parametrize("locale", LOCALES)
def test_browse_emails_show_pictures_and_prices_of_the_viewed_products(
    renderer: Renderer, locale: str
) -> None:
    email = render(
        renderer, "browse_email_1", locale, variables("browse_email_1", locale, was=False)
    )
    price = "$45.00" if locale == "en" else f"45,00{NBSP}€"
    assert price in email.text and price in email.html
    assert 'src="https://shop.example.com/img/grinder.jpg"' in email.html
    assert 'alt="Hand Coffee Grinder"' in email.html


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", EMAILS)
def test_an_older_command_without_pictures_or_prices_still_renders(
    renderer: Renderer, template: str, locale: str
) -> None:
    values = without(
        variables(template, locale), "image_url", "price", "was_price", "currency", "low_stock"
    )
    values.pop("cart_currency", None)
    values.pop("cart_value", None)
    email = render(renderer, template, locale, values)
    assert [image for image in re.findall(r"<img\b[^>]*>", email.html) if "logo" not in image] == []
    assert not re.search(r"[$€]", email.text + email.html)
    if template == "price_drop_email_1":
        assert not DROP_CLAIMS.search(email.subject + email.text + email.html)


# -- SMS --------------------------------------------------------------------------------------

# The shipped store's short link base: 39-character links, about the longest (at most 40).
SHORT_BASE = "https://s.shop.example.com/c/"


def sms_adapter() -> TwilioSms:
    settings = Settings(
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token=SecretStr("token"),
        twilio_from="+15005550006",
        click_secret=SecretStr("click-test-secret"),
    )
    shipped = load_policy()
    stores = {k: replace(s, short_link_base=SHORT_BASE) for k, s in shipped.stores.items()}
    made = provider_for(settings, "sms", replace(shipped, stores=stores))
    assert isinstance(made, TwilioSms)
    return made


@pytest.fixture(scope="module")
def sms() -> TwilioSms:
    return sms_adapter()


def sent(
    sms: TwilioSms, template: str, locale: str, values: dict[str, Any]
) -> tuple[str, int, str]:
    """The body as the SMS sender sends it (short links, opt-out line), its segments and
    encoding."""
    cmd = command(template=template, locale=SHOPPERS[locale].locale, variables=values)
    message = sms.prepare(cmd, 1_900_000_000.0)
    assert all(len(link.short_url) <= MAX_LINK_CHARS for link in message.links)
    return message.body.text, message.body.segments, message.body.encoding.encoding


PRICES = {
    "en": "$79.00 (was $89.00)",
    "de": "79,00 € statt 89,00 €",
    "fr": "79,00 € au lieu de 89,00 €",
    "es": "79,00 € (antes 89,00 €)",
}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", FLOW_SMS)
@pytest.mark.parametrize("full", [True, False])
def test_the_new_sms_fit_one_gsm7_segment_with_a_short_link(
    sms: TwilioSms, template: str, locale: str, full: bool
) -> None:
    values = variables(template, locale, was=full, low_stock=full)
    text, segments, encoding = sent(sms, template, locale, values)
    body, opt_out = text.split("\n")
    assert (segments, encoding) == (1, "GSM-7"), text
    assert "STOP" in opt_out and "STOP" not in body  # the line is added by rule
    assert "Gooseneck Kettle" in body and SHORT_BASE in body
    assert "https://shop.example.com/p/kettle" not in body
    if template == "price_drop_sms_1":
        assert (PRICES[locale] in body) is full
    else:
        low = {"en": "only a few left", "de": "nur noch wenige", "fr": "stock limité",
               "es": "Quedan pocas unidades"}[locale]  # fmt: skip
        assert (low in body) is full


@pytest.mark.parametrize("locale", LOCALES)
def test_a_price_drop_sms_without_a_lower_price_claims_none(sms: TwilioSms, locale: str) -> None:
    text, _, _ = sent(
        sms, "price_drop_sms_1", locale, variables("price_drop_sms_1", locale, was=False)
    )
    assert not DROP_CLAIMS.search(text) and not WAS_WORDS.search(text)
    words = re.sub(
        re.escape(SHORT_BASE) + r"\S*", "", text
    )  # the link's random code may hold digits
    assert SHORT_BASE in text and "79" not in words and "89" not in words


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", FLOW_SMS)
def test_the_new_sms_render_for_an_older_command(
    renderer: Renderer, template: str, locale: str
) -> None:
    values = without(variables(template, locale), "price", "was_price", "currency", "low_stock")
    body = renderer.sms(template, locale, values)
    assert "Gooseneck Kettle" in body.text and body.segments <= 2
    values.pop("product")
    assert renderer.sms(template, locale, values).text.strip()


def test_a_long_product_name_is_shortened_in_an_sms_not_the_price(sms: TwilioSms) -> None:
    values = variables("price_drop_sms_1", "en")
    values["product"] = {
        **values["product"],
        "name": "Pour-Over Coffee Set with Glass Carafe and Reusable Steel Filter",
    }
    text, segments, _ = sent(sms, "price_drop_sms_1", "en", values)
    assert "Pour-Over Coffee Set with... is now" in text and PRICES["en"] in text
    assert segments == 1
