"""Emails as a shopper's browser shows them: Debian's Chromium driven by Playwright.

Playwright talks to the system Chromium (``/usr/bin/chromium``, or ``CARTPULSE_CHROMIUM``);
it never downloads a browser of its own. Images are answered locally with placeholder
pictures, so a layout is measured as it looks with its images loaded, offline.

``python -m tests.support.email_browser docs/img`` writes the screenshots README.md shows.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from playwright.sync_api import Browser, Page, Route, sync_playwright

CHROMIUM: Final = os.environ.get("CARTPULSE_CHROMIUM", "/usr/bin/chromium")
INSTALL_HINT: Final = "install it with: apt-get install chromium (make test does it for you)"


def chromium_path() -> str | None:
    """The Chromium executable, or None when the machine has none."""
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    return shutil.which("chromium")


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed afterwards. Raises ``FileNotFoundError`` without one."""
    path = chromium_path()
    if path is None:
        raise FileNotFoundError(f"no Chromium at {CHROMIUM} or on PATH; {INSTALL_HINT}")
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's own sandbox refuses to start
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def _placeholder(url: str) -> str:
    """A picture for ``url``: the logo a wordmark, a product a coloured tile (SVG)."""
    if "logo" in url:
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="360" height="80" viewBox="0 0 360 80">'
            '<rect width="360" height="80" rx="14" fill="#0f766e"/>'
            '<circle cx="44" cy="40" r="18" fill="none" stroke="#ffffff" stroke-width="6"/>'
            '<text x="76" y="51" font-family="Georgia, serif" font-size="30" fill="#ffffff">'
            "Demo Store</text></svg>"
        )
    hue = int(hashlib.sha256(url.encode()).hexdigest()[:2], 16) * 360 // 256
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="160" viewBox="0 0 160 160">'
        f'<rect width="160" height="160" fill="hsl({hue},45%,88%)"/>'
        f'<rect x="44" y="48" width="60" height="70" rx="8" fill="hsl({hue},55%,45%)"/>'
        f'<path d="M104 62 h10 a14 14 0 0 1 0 28 h-10" stroke="hsl({hue},55%,45%)" '
        'stroke-width="8" fill="none"/></svg>'
    )


def _images(route: Route) -> None:
    url = route.request.url
    if route.request.resource_type == "image":
        route.fulfill(status=200, content_type="image/svg+xml", body=_placeholder(url))
    else:
        route.abort()


@dataclass(frozen=True, slots=True)
class Layout:
    """What a check needs from one rendering."""

    width: int
    scroll_width: int
    inner_width: int
    button_bottom: float | None
    images_without_alt: int
    address_visible: bool
    unsubscribe_visible: bool
    low_contrast: list[str]


_MEASURE: Final = """
([address, unsubscribe]) => {
  const visible = (el) => {
    if (!el) return false;
    const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'
      && Number(s.opacity) > 0;
  };
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0)) return c;
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !visible(el)) continue;
    const a = lum(rgb(getComputedStyle(el).color)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) low.push(`${el.textContent.trim().slice(0, 40)} (${ratio.toFixed(2)}:1)`);
  }
  const button = document.querySelector('.cp-button a');
  const addressEl = [...document.querySelectorAll('.cp-address div')]
    .find((d) => d.textContent.includes(address));
  const link = [...document.querySelectorAll('a')].find((a) => a.href === unsubscribe);
  return {
    scroll_width: document.documentElement.scrollWidth,
    inner_width: window.innerWidth,
    button_bottom: button ? button.getBoundingClientRect().bottom + window.scrollY : null,
    images_without_alt: [...document.images].filter((i) => !i.hasAttribute('alt')
      || !i.getAttribute('alt').trim()).length,
    address_visible: visible(addressEl),
    unsubscribe_visible: visible(link),
    low_contrast: low,
  };
}
"""


def open_email(
    browser: Browser, html: str, width: int, dark: bool = False, height: int = 900
) -> Page:
    """A page showing ``html`` at ``width`` CSS pixels, its images loaded; close it after."""
    page = browser.new_page(
        viewport={"width": width, "height": height},
        color_scheme="dark" if dark else "light",
        device_scale_factor=1,
    )
    page.route("**/*", _images)
    page.set_content(html, wait_until="load")
    return page


def measure(page: Page, address: str, unsubscribe_url: str) -> Layout:
    data: dict[str, Any] = page.evaluate(_MEASURE, [address, unsubscribe_url])
    return Layout(width=page.viewport_size["width"] if page.viewport_size else 0, **data)


def screenshot(browser: Browser, html: str, path: Path, width: int = 375) -> None:
    """The whole email at ``width``, as a PNG."""
    page = open_email(browser, html, width, height=640)  # the page grows to the email's length
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.close()


def main(argv: list[str]) -> int:
    from senders.messages.templates import Renderer
    from tests.support.emails import SCREENSHOTS, render_sample
    from tests.support.flow_messages import FLOW_SCREENSHOTS, SHOPPERS, variables

    folder = Path(argv[0]) if argv else Path("docs/img")
    folder.mkdir(parents=True, exist_ok=True)
    pages = [(t, loc, render_sample(t, loc)[0].html) for t, loc in SCREENSHOTS]
    renderer = Renderer()
    pages += [
        (t, loc, renderer.render_email(t, SHOPPERS[loc].locale, variables(t, loc)).html)
        for t, loc in FLOW_SCREENSHOTS
    ]
    with chromium() as browser:
        for template, locale, html in pages:
            path = folder / f"email-{template}-{locale}.png"
            screenshot(browser, html, path)
            print(path)  # noqa: T201 - the command reports what it wrote
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
