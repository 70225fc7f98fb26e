"""HTML email parts written in MJML, compiled to responsive HTML when a template is loaded.

An ``.html.j2`` template whose source is an ``<mjml>`` document (Jinja comments may come
first) is compiled by mjml-python (the Python port of MJML) into the table layout email clients
need, then handed to Jinja like any other template. Jinja expressions survive the compile as
text (``href="{{ cart_url }}"``, ``{{ store_name }}`` in an ``mj-text``); Jinja statements
between MJML components go inside ``<mj-raw>`` (``<mj-raw>{% if coupon %}</mj-raw>``), and
inside ``mj-text``/``mj-table`` content they can stand as they are. Expressions must not use
``<``, ``>`` or ``&``: the MJML parser reads the source as HTML.

Compiling happens once per template source (Jinja caches the result, and so does this module
across renderers); a source that does not compile fails loading with the parser's reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Final

from jinja2 import BaseLoader, Environment, TemplateSyntaxError
from mjml import mjml_to_html

_MJML_START: Final = re.compile(r"^\s*(?:\{#.*?#\}\s*)*<mjml[\s>]", re.DOTALL)


def is_mjml(name: str, source: str) -> bool:
    """True for an HTML part whose source is an MJML document."""
    return name.endswith(".html.j2") and _MJML_START.match(source) is not None


@lru_cache(maxsize=64)
def compile_mjml(source: str) -> str:
    """The HTML an MJML document compiles to, Jinja syntax kept as written.

    Raises ``ValueError`` when the document is not MJML mjml-python can read.
    """
    result = mjml_to_html(source, keep_comments=False)
    if result.errors:
        raise ValueError("; ".join(str(error) for error in result.errors))
    return str(result.html)


class MjmlLoader(BaseLoader):
    """Wraps a loader: MJML HTML parts come out compiled, everything else as it is."""

    has_source_access = True

    def __init__(self, inner: BaseLoader) -> None:
        self._inner = inner

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = self._inner.get_source(environment, template)
        if not is_mjml(template, source):
            return source, filename, uptodate
        try:
            html = compile_mjml(source)
        except (ValueError, AttributeError, KeyError, TypeError) as exc:
            # mjml-python reports a malformed document through whatever failed first
            raise TemplateSyntaxError(
                f"MJML does not compile: {exc}", 1, template, filename
            ) from None
        return html, filename, uptodate

    def list_templates(self) -> list[str]:
        return self._inner.list_templates()
