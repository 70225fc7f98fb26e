"""What the emails say: prices, totals and times in the shopper's locale and zone, with the
variables the journey engine really produces (``build_command``), in every shipped locale."""

from __future__ import annotations

import re
from datetime import UTC
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel import Locale
from hypothesis import given
from hypothesis import strategies as st

from senders.messages.formats import local_date, local_datetime, money, percent, text_on
from senders.messages.mjml_loader import compile_mjml, is_mjml
from senders.messages.template_filters import message_locale
from senders.messages.templates import Renderer
from streams.contract.errors import ConfigurationError, InvalidRecord
from streams.contract.journey import Profile
from streams.core.messages import build_command
from streams.core.policy import parse_policy
from streams.runtime.policy_file import default_policy_text
from tests.support.emails import (
    EMAILS,
    LOCALES,
    SECRET,
    UNSUBSCRIBE_URL,
    render_sample,
    renderer,
    sample_command,
    sample_journey,
    sample_variables,
)

NBSP = "\u00a0"

# -- formatting (pure) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "currency", "expected"),
    [
        ("en", "USD", "$129.00"),
        ("en-GB", "GBP", "£129.00"),
        ("de", "EUR", f"129,00{NBSP}€"),
        ("de-AT", "EUR", f"€{NBSP}129,00"),
        ("fr", "EUR", f"129,00{NBSP}€"),
        ("es", "EUR", f"129,00{NBSP}€"),
        ("de", "USD", f"129,00{NBSP}$"),
        ("en", "JPY", "¥129"),
    ],
)
def test_money_is_written_the_way_the_locale_writes_it(
    locale: str, currency: str, expected: str
) -> None:
    assert money("129.00", currency, Locale.parse(locale.replace("-", "_"))) == expected


def test_money_multiplies_by_the_quantity_exactly() -> None:
    assert money("0.10", "USD", Locale("en"), quantity=3) == "$0.30"  # not 0.30000000000000004
    assert money("1234.5", "EUR", Locale("de"), 2) == f"2.469,00{NBSP}€"


@pytest.mark.parametrize(
    ("value", "currency"),
    [("12.00", None), ("12.00", "usd"), ("12.00", "EURO"), ("abc", "USD"), ("NaN", "USD")],
)
def test_money_refuses_what_it_cannot_write(value: str, currency: str | None) -> None:
    with pytest.raises(ValueError, match=r"currency|amount"):
        money(value, currency, Locale("en"))


@pytest.mark.parametrize(
    ("locale", "zone", "expected"),
    [
        ("en", "America/New_York", "Sat, June 7, 10:05\u202fAM EDT"),
        ("en", "America/Los_Angeles", "Sat, June 7, 7:05\u202fAM PDT"),
        ("de", "Europe/Berlin", "Sa., 7. Juni, 16:05 MESZ"),
        ("es", "Europe/Madrid", "sáb, 7 de junio, 16:05 CEST"),
        # CLDR has no short French name for CEST: the long one, never "+0200"
        ("fr", "Europe/Paris", "sam. 7 juin, 16:05 heure d\u2019été d\u2019Europe centrale"),
        ("en", "Asia/Tokyo", "Sat, June 7, 11:05\u202fPM Japan Standard Time"),
    ],
)
def test_a_time_is_shown_in_the_recipients_zone_and_language(
    locale: str, zone: str, expected: str
) -> None:
    moment = "2025-06-07T14:05:00.000Z"
    assert local_datetime(moment, Locale.parse(locale), ZoneInfo(zone)) == expected


def test_a_date_is_the_recipients_calendar_day() -> None:
    new_year_in_berlin = "2025-12-31T23:30:00Z"
    assert local_date(new_year_in_berlin, Locale("de"), ZoneInfo("Europe/Berlin")) == (
        "1. Januar 2026"
    )
    assert local_date(new_year_in_berlin, Locale("en"), UTC) == "December 31, 2025"
    with pytest.raises(ValueError, match="no UTC offset"):
        local_date("2025-12-31T23:30:00", Locale("en"), UTC)


def test_percentages_follow_the_locale() -> None:
    assert percent(10, Locale("en")) == "10%"
    assert percent(15, Locale("de")) == f"15{NBSP}%"
    assert percent("12.5", Locale("fr")) == f"12,5{NBSP}%"


@given(st.from_regex(r"#[0-9a-f]{6}", fullmatch=True))
def test_a_button_label_always_reads_on_the_accent_colour(accent: str) -> None:
    def luminance(color: str) -> float:
        rgb = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    a, b = luminance(accent), luminance(text_on(accent))
    assert (max(a, b) + 0.05) / (min(a, b) + 0.05) >= 4.5


@pytest.mark.parametrize(
    ("requested", "written_in", "expected"),
    [("de-AT", "de", "de-AT"), ("en-GB", "en", "en-GB"), ("pt-BR", "en", "en"), ("fr", "fr", "fr")],
)
def test_a_message_formats_in_one_language(requested: str, written_in: str, expected: str) -> None:
    assert message_locale(requested, written_in) == expected


# -- MJML -----------------------------------------------------------------------------------


def test_mjml_keeps_jinja_and_gives_a_responsive_page() -> None:
    html = compile_mjml(
        "<mjml><mj-body><mj-section><mj-column><mj-raw>{% if x %}</mj-raw>"
        '<mj-button href="{{ url }}">Go</mj-button><mj-raw>{% endif %}</mj-raw>'
        "</mj-column></mj-section></mj-body></mjml>"
    )
    assert 'name="viewport"' in html and "@media only screen" in html
    assert 'href="{{ url }}"' in html and "{% if x %}" in html


def test_only_html_parts_written_in_mjml_are_compiled(tmp_path: Path) -> None:
    assert is_mjml("a.en.html.j2", "{# note #}\n<mjml><mj-body></mj-body></mjml>")
    assert not is_mjml("a.en.txt.j2", "<mjml></mjml>")
    assert not is_mjml("a.en.html.j2", "<!doctype html><html></html>")
    (tmp_path / "plain.en.subject.j2").write_text("Hi")
    (tmp_path / "plain.en.txt.j2").write_text("Hi {{ name }}")
    (tmp_path / "plain.en.html.j2").write_text("<p>Hi {{ name }}</p>")  # hand-written: as is
    email = Renderer(tmp_path).render_email(
        "plain", "en", {"name": "<b>", "store_postal_address": "1 Road"}
    )
    assert email.html == "<p>Hi &lt;b&gt;</p>\n" and email.text == "Hi <b>\n"


def test_a_broken_mjml_template_is_refused_with_a_reason(tmp_path: Path) -> None:
    for part, text in [("subject", "Hi"), ("txt", "Hi")]:
        (tmp_path / f"bad.en.{part}.j2").write_text(text)
    (tmp_path / "bad.en.html.j2").write_text("<mjml><mj-head></mj-head></mjml>")  # no body
    with pytest.raises(InvalidRecord, match=r"bad.*MJML does not compile"):
        Renderer(tmp_path).render_email("bad", "en", {"store_postal_address": "1 Road"})


# -- the shipped emails, with build_command's variables -------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", EMAILS)
@pytest.mark.parametrize("coupon", [True, False])
def test_every_email_renders_in_every_locale(template: str, locale: str, coupon: bool) -> None:
    email, command = render_sample(template, locale, coupon=coupon)
    variables = command.variables
    assert email.subject and "\n" not in email.subject
    assert f'<html lang="{command.locale}"' in email.html
    assert 'name="viewport"' in email.html and 'name="color-scheme"' in email.html
    for part in (email.html, email.text):
        assert "Cartpulse Demo Store, 100 Example Street" in part
        assert UNSUBSCRIBE_URL.split("?")[0] in part
        assert "help@shop.example.com" in part
        assert "{{" not in part and "{%" not in part
    assert f'src="{variables["store_logo_url"]}"' in email.html
    assert variables["store_accent_color"] in email.html
    names = [p["name"] for p in variables["cart_items"] or variables["viewed_products"]]
    for name in names:
        assert name in email.text and name in email.html
    for image in re.findall(r"<img\b[^>]*>", email.html):
        assert re.search(r'\balt="[^"]+"', image), image


@pytest.mark.parametrize(
    ("locale", "prices", "total"),
    [
        ("en", ["$36.00", "$64.00", "$12.50"], "Total: $112.50"),
        ("de", [f"36,00{NBSP}€", f"64,00{NBSP}€"], f"Gesamtsumme: 112,50{NBSP}€"),
        ("fr", [f"36,00{NBSP}€", f"12,50{NBSP}€"], f"Total{NBSP}: 112,50{NBSP}€"),
        ("es", [f"36,00{NBSP}€", f"64,00{NBSP}€"], f"Total: 112,50{NBSP}€"),
    ],
)
def test_prices_and_the_cart_total_are_in_the_shoppers_format(
    locale: str, prices: list[str], total: str
) -> None:
    email, _ = render_sample("cart_email_1", locale)
    for price in prices:  # 2 mugs at 18.00: the line shows 36.00
        assert price in email.text and price in email.html
    assert total in email.text
    assert total.split(":")[-1].strip() in email.html
    assert "USD" not in email.text and "129.00 USD" not in email.html


@pytest.mark.parametrize(
    ("locale", "until"),
    [
        # due 2025-06-07T14:00Z + 72 h = 2025-06-10T14:00Z, in each shopper's own zone
        ("en", "Valid until Tue, June 10, 9:00\u202fAM CDT"),  # America/Chicago
        ("de", "Gültig bis Di., 10. Juni, 16:00 MESZ"),  # Europe/Berlin
        ("fr", "Valable jusqu\u2019au mar. 10 juin, 16:00 heure d\u2019été d\u2019Europe centrale"),
        ("es", "Válido hasta el mar, 10 de junio, 16:00 CEST"),  # Europe/Madrid
    ],
)
def test_the_coupon_shows_its_code_and_a_human_expiry_in_the_recipients_zone(
    locale: str, until: str
) -> None:
    email, command = render_sample("cart_email_2", locale)
    code = command.variables["coupon"]["code"]
    assert command.variables["coupon"]["expires_at"] == "2025-06-10T14:00:00.000Z"
    for part in (email.text, email.html):
        assert code in part and until in part
        assert "2025-06-10T" not in part


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", EMAILS)
def test_nothing_claims_an_expiry_without_a_coupon_that_expires(template: str, locale: str) -> None:
    claims = re.compile(r"valid|gültig|valable|válido|expir|abl[aä]uf|jusqu|hasta el", re.I)
    plain, _ = render_sample(template, locale, coupon=False)
    assert not claims.search(plain.subject + plain.text + plain.html)
    command = sample_command(template, locale)
    if "coupon" in command.variables:
        variables = sample_variables(command)
        no_expiry = {**variables, "coupon": {k: v for k, v in variables["coupon"].items()
                                             if k != "expires_at"}}  # fmt: skip
        email = renderer().render_email(template, command.locale, no_expiry)
        assert not claims.search(email.subject + email.text + email.html)


@pytest.mark.parametrize(
    ("locale", "subject"),
    [
        ("en", "10% off your cart, Ann"),
        ("de", f"10{NBSP}% Rabatt auf Ihren Warenkorb, Jonas"),
        ("fr", f"10{NBSP}% de réduction sur votre panier, Camille"),
        ("es", f"10{NBSP}% de descuento en tu carrito, Lucía"),
    ],
)
def test_the_incentive_subject_names_the_discount(locale: str, subject: str) -> None:
    email, _ = render_sample("cart_email_2", locale)
    assert email.subject == " ".join(subject.split())  # the subject is one line of plain spaces


def test_a_regional_shopper_gets_regional_formats_and_a_foreign_one_the_templates() -> None:
    austrian = sample_command("cart_email_1", "de", profile=Profile(
        "c-1", first_name="Lena", locale="de-AT", timezone="Europe/Vienna"))  # fmt: skip
    email = renderer().render_email("cart_email_1", "de-AT", sample_variables(austrian))
    assert f"€{NBSP}36,00" in email.text  # Austrian order, German words
    brazilian = sample_command("cart_email_1", "fr", profile=Profile(
        "c-1", first_name="Ana", locale="pt-BR", timezone="America/Sao_Paulo"))  # fmt: skip
    email = renderer().render_email("cart_email_1", "pt-BR", sample_variables(brazilian))
    assert "Ana, your cart is waiting for you" in email.text  # no pt pack: English throughout
    assert "€36.00" in email.text  # the cart's euros, written the English way


def test_the_browse_email_leads_to_the_most_viewed_product() -> None:
    email, command = render_sample("browse_email_1", "en")
    assert command.variables["product_url"] == "https://shop.example.com/p/kettle"
    assert "Take another look: https://shop.example.com/p/kettle" in email.text
    assert 'href="https://shop.example.com/p/kettle"' in email.html


# -- what build_command gives the templates --------------------------------------------------


def _zone_of_command(profile_zone: str | None, store_zone: str) -> str:
    text = default_policy_text().replace(
        'timezone = "America/New_York"', f'timezone = "{store_zone}"', 1
    )
    policy = parse_policy(text, "p.toml")
    state, journey, step = sample_journey(
        "cart_email_1", "en", Profile("c-1", timezone=profile_zone)
    )
    command = build_command(policy, SECRET, "live", state, journey, step, "a@b.co")
    return str(command.variables["timezone"])


@pytest.mark.parametrize(
    ("profile_zone", "expected"),
    [
        ("Europe/Vienna", "Europe/Vienna"),
        ("Mars/Olympus_Mons", "Asia/Tokyo"),  # unknown: the store's
        (None, "Asia/Tokyo"),
    ],
)
def test_commands_carry_the_recipients_zone(profile_zone: str | None, expected: str) -> None:
    assert _zone_of_command(profile_zone, "Asia/Tokyo") == expected


def test_commands_carry_the_store_brand() -> None:
    command = sample_command("cart_email_1", "en")
    assert command.variables["store_logo_url"] == "https://shop.example.com/static/logo.png"
    assert command.variables["store_accent_color"] == "#0f766e"
    plain = parse_policy(
        default_policy_text().replace("logo_url", "# logo_url").replace("accent_color", "# a"),
        "p.toml",
    )
    assert plain.store("default").logo_url is None and plain.store("default").accent_color is None


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('logo_url = "http://shop.example.com/logo.png"', "logo_url"),
        ('logo_url = "logo.png"', "logo_url"),
        ("logo_url = 7", "logo_url"),
        ('accent_color = "teal"', "accent_color"),
        ('accent_color = "#0f766"', "accent_color"),
        ('accent_color = "#0f766e80"', "accent_color"),
    ],
)
def test_a_bad_brand_setting_names_the_field_and_the_shape(line: str, field: str) -> None:
    key = line.split(" ", 1)[0]
    text = re.sub(rf"^{key} = .*$", line, default_policy_text(), count=1, flags=re.M)
    with pytest.raises(ConfigurationError, match=rf"p\.toml:\d+: stores\.default\.{field}: "):
        parse_policy(text, "p.toml")


def test_an_accent_colour_is_kept_lower_case() -> None:
    text = default_policy_text().replace('accent_color = "#0f766e"', 'accent_color = "#0F766E"')
    assert parse_policy(text, "p.toml").store("default").accent_color == "#0f766e"


def test_the_utc_fallback_is_said_out_loud() -> None:
    variables = {**sample_variables(sample_command("cart_email_2", "en"))}
    del variables["timezone"]  # a command from before commands carried the zone
    email = renderer().render_email("cart_email_2", "en", variables)
    assert "Valid until Tue, June 10, 2:00\u202fPM UTC" in email.text
