"""The HTML report as someone opens it from disk: headless Chromium with no network at all.

The browser runs with a proxy that answers nothing and an offline context, and every request
that is not for the file itself is refused and recorded, as is every console error and every
uncaught script error: a page that needs the network shows it here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from playwright.sync_api import ConsoleMessage, Page, Route, sync_playwright

from tests.support.email_browser import CHROMIUM, INSTALL_HINT, chromium_path

WIDTH: Final = 1320
# A port nothing listens on: were the offline context to let a request through, it goes nowhere.
# --no-sandbox: CI runs as root, where Chromium's own sandbox refuses to start.
NO_NETWORK: Final = (
    "--no-sandbox",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",  # loopback goes through the dead proxy too
)

# What each plotly chart drew: its SVG, its title, and the marks a reader sees (bars and
# markers with an area on screen, error bars).
CHARTS: Final = """
() => [...document.querySelectorAll('.plotly-graph-div')].map((div) => {
  const drawn = (el) => { const b = el.getBBox(); return b.width > 0 && b.height > 0; };
  const box = div.getBoundingClientRect();
  return {
    id: div.id,
    svgs: div.querySelectorAll('svg.main-svg').length,
    title: (div.querySelector('.gtitle') || {}).textContent || '',
    bars: [...div.querySelectorAll('g.trace.bars g.point path')].filter(drawn).length,
    markers: [...div.querySelectorAll('g.trace.scatter path.point')].filter(drawn).length,
    errorbars: div.querySelectorAll('g.errorbar').length,
    width: box.width,
    height: box.height,
  };
})
"""


@dataclass(slots=True)
class Shown:
    """An open page and what it tried that a page read from disk must not."""

    page: Page
    requests: list[str] = field(default_factory=list)  # anything but the file itself
    errors: list[str] = field(default_factory=list)  # console errors, uncaught exceptions


@contextmanager
def open_report(path: Path, width: int = WIDTH) -> Iterator[Shown]:
    """``path`` loaded in headless Chromium, offline, once every chart has drawn."""
    executable = chromium_path()
    if executable is None:
        raise FileNotFoundError(f"no Chromium at {CHROMIUM} or on PATH; {INSTALL_HINT}")
    url = path.resolve().as_uri()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(NO_NETWORK))
        try:
            context = browser.new_context(
                viewport={"width": width, "height": 900}, device_scale_factor=1, offline=True
            )
            page = context.new_page()
            shown = Shown(page)

            def refuse(route: Route) -> None:
                if route.request.url != url:
                    shown.requests.append(route.request.url)
                    route.abort()
                else:
                    route.continue_()

            def console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    shown.errors.append(message.text)

            page.route("**/*", refuse)
            page.on("console", console)
            page.on("pageerror", lambda exc: shown.errors.append(str(exc)))
            page.goto(url, wait_until="load")
            page.wait_for_function(
                "() => [...document.querySelectorAll('.plotly-graph-div')]"
                ".every((d) => d.querySelector('svg.main-svg'))",
                timeout=30_000,
            )
            yield shown
        finally:
            browser.close()
