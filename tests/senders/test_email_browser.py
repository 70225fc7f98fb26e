"""Every shipped email in every shipped locale, as a shopper's browser lays it out.

Headless Chromium (Debian's ``chromium``; ``make test`` installs it) at a phone's 375 px and a
desktop's 1200 px: nothing scrolls sideways, the button shows without scrolling on a phone,
every image has alt text, the postal address and the unsubscribe link are visible, and every
text reads (WCAG AA contrast, 4.5:1) in light and dark mode. Without Chromium the tests are
skipped, except in CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import pytest
from playwright.sync_api import Browser

from senders.messages.templates import DEFAULT_DIRECTORY
from tests.conftest import IN_CI
from tests.support.email_browser import Layout, chromium, chromium_path, measure, open_email
from tests.support.emails import (
    EMAILS,
    LOCALES,
    UNSUBSCRIBE_URL,
    render_sample,
    renderer,
    sample_command,
    sample_variables,
)
from tests.support.flow_messages import FLOW_EMAILS, POSTAL_ADDRESS, SHOPPERS, variables

PHONE = 375
DESKTOP = 1200
FOLD = 600  # what a phone shows before the shopper scrolls


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if chromium_path() is None:
        message = "no Chromium: apt-get install chromium (make test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with chromium() as browser:
        yield browser


def _layout(browser: Browser, html: str, width: int, *, dark: bool = False) -> Layout:
    address = str(sample_command("cart_email_1", "en").variables["store_postal_address"])
    page = open_email(browser, html, width, dark=dark)
    try:
        return measure(page, address, UNSUBSCRIBE_URL)
    finally:
        page.close()


def test_every_shipped_email_and_locale_is_checked() -> None:
    shipped = {
        (p.name.split(".")[0], p.name.split(".")[1]) for p in DEFAULT_DIRECTORY.glob("*.html.j2")
    }
    every = (*EMAILS, *FLOW_EMAILS)
    assert shipped - {("_layout", "html")} == {(t, loc) for t in every for loc in LOCALES}


@pytest.mark.parametrize("width", [PHONE, DESKTOP])
@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", EMAILS)
def test_the_email_lays_out_for_a_shopper(
    browser: Browser, template: str, locale: str, width: int
) -> None:
    email, _ = render_sample(template, locale)
    layout = _layout(browser, email.html, width)
    assert layout.scroll_width <= layout.inner_width == width, "the email scrolls sideways"
    assert layout.button_bottom is not None, "no button"
    if width == PHONE:
        assert layout.button_bottom <= FOLD, f"the button ends at {layout.button_bottom}px"
    assert layout.images_without_alt == 0
    assert layout.address_visible, "the postal address is not visible"
    assert layout.unsubscribe_visible, "the unsubscribe link is not visible"
    assert layout.low_contrast == [], "text that does not read on its background"


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", EMAILS)
def test_dark_mode_keeps_every_text_readable(browser: Browser, template: str, locale: str) -> None:
    email, _ = render_sample(template, locale)
    layout = _layout(browser, email.html, PHONE, dark=True)
    assert layout.low_contrast == []
    assert layout.address_visible and layout.unsubscribe_visible


def test_long_names_wrap_instead_of_widening_the_email(browser: Browser) -> None:
    command = sample_command("cart_email_2", "de")
    variables: dict[str, Any] = sample_variables(command)
    word = "Donaudampfschifffahrtsgesellschaftskapitänsmützenhalterung" * 2
    variables["first_name"] = "Maximiliane-Friederike-Kunigunde"
    variables["cart_items"] = [
        {**variables["cart_items"][0], "name": word, "price": "1234567.89", "quantity": 1000}
    ]
    variables["store_postal_address"] = "Postfach " + "1" * 80 + ", 10115 Berlin"
    email = renderer().render_email("cart_email_2", command.locale, variables)
    layout = _layout(browser, email.html, PHONE)
    assert layout.scroll_width <= PHONE


def _flow_email(template: str, locale: str, **changes: Any) -> str:
    """The HTML of ``template`` with every product detail a command can carry: pictures,
    prices in the line's currency, a lower price beside the old one, a line running low."""
    values = {**variables(template, locale), **changes}
    return renderer().render_email(template, SHOPPERS[locale].locale, values).html


@pytest.mark.parametrize("width", [PHONE, DESKTOP])
@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", (*EMAILS, *FLOW_EMAILS))
def test_product_details_lay_out_for_a_shopper(
    browser: Browser, template: str, locale: str, width: int
) -> None:
    html = _flow_email(template, locale)
    layout = _layout(browser, html, width)
    assert layout.scroll_width <= layout.inner_width == width, "the email scrolls sideways"
    assert layout.button_bottom is not None, "no button"
    if width == PHONE:
        assert layout.button_bottom <= FOLD, f"the button ends at {layout.button_bottom}px"
    assert layout.images_without_alt == 0
    assert layout.address_visible and layout.unsubscribe_visible
    assert layout.low_contrast == [], "text that does not read on its background"


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", (*EMAILS, *FLOW_EMAILS))
def test_product_details_read_in_dark_mode(browser: Browser, template: str, locale: str) -> None:
    layout = _layout(browser, _flow_email(template, locale), PHONE, dark=True)
    assert layout.low_contrast == []
    assert layout.address_visible and layout.unsubscribe_visible


_STRUCK: Final = """
() => [...document.querySelectorAll('s')].map((s) => ({
  line: getComputedStyle(s).textDecorationLine,
  text: s.textContent.trim(),
  visible: s.getBoundingClientRect().width > 0,
}))
"""


def test_the_old_price_shows_struck_through(browser: Browser) -> None:
    page = open_email(browser, _flow_email("price_drop_email_1", "de"), PHONE)
    try:
        struck = page.evaluate(_STRUCK)
        text = page.inner_text("body")
    finally:
        page.close()
    assert struck == [{"line": "line-through", "text": "89,00\u00a0€", "visible": True}]
    assert "statt 89,00\u00a0€" in text and "79,00\u00a0€" in text


_PIXEL: Final = """
(url) => [...document.images].filter((i) => i.src === url).map((i) => {
  const r = i.getBoundingClientRect();
  return [r.width, r.height, i.getAttribute('alt'), i.getAttribute('aria-hidden')];
})
"""


def test_the_open_pixel_is_invisible_and_changes_nothing(browser: Browser) -> None:
    pixel = "https://hooks.shop.example/o/token"
    plain = _layout(browser, _flow_email("checkout_email_1", "en"), PHONE)
    html = _flow_email("checkout_email_1", "en", open_pixel_url=pixel)
    page = open_email(browser, html, PHONE)
    try:
        images = page.evaluate(_PIXEL, pixel)
        layout = measure(page, POSTAL_ADDRESS, UNSUBSCRIBE_URL)
    finally:
        page.close()
    assert images == [[1, 1, "", "true"]]  # decorative: screen readers skip it
    assert layout.images_without_alt == 1  # the pixel, and nothing else
    assert layout.scroll_width == plain.scroll_width
    assert layout.button_bottom == plain.button_bottom
