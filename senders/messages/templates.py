"""Message rendering: sandboxed Jinja2 templates, SMS composition and segment count (pure).

Templates are named ``<template>.<locale>.<part>.j2`` where part is ``sms`` for an SMS body and
``subject``, ``txt`` and ``html`` for an email, and are looked up per store in its template
packs (``senders.messages.packs``: the store's folder, ``CARTPULSE_TEMPLATES_DIR``, the shipped
``senders/messages/templates/``), the locale falling back ``de-AT`` → ``de`` → the store's → ``en``.
Names starting with ``_`` are parts, not messages: ``_opt_out.<locale>.sms.j2`` is the SMS
opt-out line, which every SMS carries by rule (docs/semantics.md, "SMS opt-out line"), in the
language its body was written in.
Templates run in Jinja's ``SandboxedEnvironment`` (command variables come from upstream data,
never trusted), HTML parts are autoescaped, and an undefined variable is an error unless the
template gives a ``default``: a message with a hole in it is never sent.
An HTML part written in MJML is compiled to responsive HTML when it is loaded
(``senders.messages.mjml_loader``). Templates format money and times with the filters of
``senders.messages.template_filters`` (Babel), in the ``locale`` the renderer adds to the
variables: the
shopper's when the template is in the shopper's language, else the template's own.

Every rendering problem raises ``InvalidRecord`` with a reason; the command goes to the DLQ.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    UndefinedError,
)
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from senders.messages.mjml_loader import MjmlLoader
from senders.messages.packs import DEFAULT_STORE, OPT_OUT_PART, SHIPPED, Packs
from senders.messages.segments import SmsEncoding, encode_info, smart_encode
from senders.messages.template_filters import FILTERS, message_locale
from streams.contract.errors import InvalidRecord

DEFAULT_DIRECTORY: Final = SHIPPED
MAX_SMS_CHARS: Final = 1600  # Twilio refuses longer bodies (error 21617)
MISSING_POSTAL_ADDRESS: Final = "missing_postal_address"
_SPACES: Final = re.compile(r"[ \t]+")
_BLANK_LINES: Final = re.compile(r"\n{3,}")


@dataclass(frozen=True, slots=True)
class SmsBody:
    """The exact text to send and what it costs."""

    text: str
    encoding: SmsEncoding

    @property
    def segments(self) -> int:
        return self.encoding.segments


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class Renderer:
    """Renders command templates from each store's packs; safe to share between tasks."""

    def __init__(self, packs: Packs | Path = DEFAULT_DIRECTORY) -> None:
        self._packs = packs if isinstance(packs, Packs) else Packs(shipped=packs)
        self._envs: dict[tuple[Path, ...], SandboxedEnvironment] = {}

    def _env(self, store_id: str) -> SandboxedEnvironment:
        """One environment per distinct folder list (its loader searches them in order)."""
        folders = tuple(self._packs.folders(store_id))
        env = self._envs.get(folders)
        if env is None:
            env = SandboxedEnvironment(
                loader=MjmlLoader(FileSystemLoader([str(f) for f in folders])),
                autoescape=lambda name: bool(name and name.endswith(".html.j2")),
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                auto_reload=False,
            )
            env.filters.update(FILTERS)
            self._envs[folders] = env
        return env

    def render_sms(
        self,
        template: str,
        locale: str,
        variables: Mapping[str, Any],
        store_id: str = DEFAULT_STORE,
    ) -> str:
        """The SMS body of ``template``, whitespace tidied (one line per template line)."""
        return self._tidy(self._render(template, locale, "sms", variables, store_id))

    def render_sms_opt_out(
        self, locale: str, variables: Mapping[str, Any], store_id: str = DEFAULT_STORE
    ) -> str:
        """The opt-out line in ``locale`` (or its fallback), on one line."""
        return " ".join(self._render(OPT_OUT_PART, locale, "sms", variables, store_id).split())

    def sms(
        self,
        template: str,
        locale: str,
        variables: Mapping[str, Any],
        smart: bool = True,
        max_segments: int = 10,
        store_id: str = DEFAULT_STORE,
    ) -> SmsBody:
        """The SMS as sent: the body, then the opt-out line in the body's own language.

        The line's language follows the template the body came from (a ``fr`` command whose
        template has no ``fr`` text is written in the fallback language, line included), so a
        message never mixes two languages.
        """
        text, line = self.sms_parts(template, locale, variables, store_id)
        return compose_sms(text, line, smart, max_segments)

    def sms_parts(
        self,
        template: str,
        locale: str,
        variables: Mapping[str, Any],
        store_id: str = DEFAULT_STORE,
    ) -> tuple[str, str]:
        """The SMS body and its opt-out line, rendered but not yet composed (an adapter may
        rewrite the body first, as the SMS sender shortens links)."""
        body = self._load(template, locale, "sms", store_id)
        written_in = _locale_of(body, template)
        text = self._tidy(self._run(body, template, locale, "sms", variables))
        return text, self.render_sms_opt_out(written_in, variables, store_id)

    @staticmethod
    def _tidy(text: str) -> str:
        return _BLANK_LINES.sub("\n\n", _SPACES.sub(" ", text)).strip()

    def render_email(
        self,
        template: str,
        locale: str,
        variables: Mapping[str, Any],
        store_id: str = DEFAULT_STORE,
    ) -> RenderedEmail:
        """The email's three parts; refused without the store's postal address.

        Every commercial email shows the sender's postal address (CAN-SPAM), so a command
        whose ``store_postal_address`` is missing or blank is never rendered: the reason starts
        with ``missing_postal_address``.
        """
        address = variables.get("store_postal_address")
        if not isinstance(address, str) or not address.strip():
            raise InvalidRecord(
                f"{MISSING_POSTAL_ADDRESS}: the store has no postal address; set "
                "postal_address under its [stores.<id>] in the flow policy"
            )
        subject = " ".join(self._render(template, locale, "subject", variables, store_id).split())
        if not subject:
            raise InvalidRecord(f"template {template!r} renders an empty subject")
        text = self._render(template, locale, "txt", variables, store_id)
        text = _BLANK_LINES.sub("\n\n", text).strip()
        html = self._render(template, locale, "html", variables, store_id).strip()
        return RenderedEmail(subject, text + "\n", html + "\n")

    def has(self, template: str, locale: str, part: str, store_id: str = DEFAULT_STORE) -> bool:
        try:
            self._load(template, locale, part, store_id)
        except InvalidRecord:
            return False
        return True

    def _render(
        self,
        template: str,
        locale: str,
        part: str,
        variables: Mapping[str, Any],
        store_id: str,
    ) -> str:
        compiled = self._load(template, locale, part, store_id)
        return self._run(compiled, template, locale, part, variables)

    @staticmethod
    def _run(
        compiled: Template, template: str, locale: str, part: str, variables: Mapping[str, Any]
    ) -> str:
        """``compiled`` filled with ``variables`` and the ``locale`` its filters format in."""
        try:
            return compiled.render(_localised(variables, locale, compiled, template))
        except UndefinedError as exc:
            raise InvalidRecord(f"template {template!r} ({part}): {exc.message}") from None
        except SecurityError as exc:
            raise InvalidRecord(f"template {template!r} ({part}) was stopped: {exc}") from None
        except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
            raise InvalidRecord(f"template {template!r} ({part}) failed: {exc}") from None

    def _load(self, template: str, locale: str, part: str, store_id: str) -> Template:
        names = self._packs.names(template, locale, part, store_id)
        try:
            return self._env(store_id).select_template(names)
        except TemplateNotFound:
            raise InvalidRecord(f"no template {template!r} for {part} in {locale!r}") from None
        except TemplateError as exc:
            raise InvalidRecord(f"template {template!r} ({part}) is broken: {exc}") from None


def _localised(
    variables: Mapping[str, Any], locale: str, compiled: Template, template: str
) -> dict[str, Any]:
    """The variables plus ``locale``: what the filters format money and times in."""
    return {**variables, "locale": message_locale(locale, _locale_of(compiled, template))}


def _locale_of(compiled: Template, template: str) -> str:
    """The locale of a loaded ``<template>.<locale>.<part>.j2``."""
    name = compiled.name or ""
    return name[len(template) + 1 :].split(".", 1)[0]


def compose_sms(
    rendered: str,
    opt_out_line: str,
    smart: bool = True,
    max_segments: int = 10,
    notice: bool = True,
) -> SmsBody:
    """The body as sent: the text, then the opt-out line on a line of its own.

    The line is added by rule, never by looking for "STOP" in the text: a product called
    "Nonstop Espresso Maker" or a link with ``/stop-`` in it says nothing about opting out.
    ``notice`` false leaves it out: only for a command the journey engine marked so (a store
    whose rule is first_in_30_days, the number told within 30 days). Raises ``InvalidRecord``
    when the body or the opt-out line is empty, the whole is over Twilio's 1,600 characters,
    or it needs more than ``max_segments`` segments.
    """
    text = rendered.strip()
    if not text:
        raise InvalidRecord("the SMS renders empty")
    line = opt_out_line.strip()
    if not line:
        raise InvalidRecord("the SMS has no opt-out line: every marketing SMS must carry one")
    if notice:
        text = f"{text}\n{line}"
    if smart:
        text = smart_encode(text)
    if len(text) > MAX_SMS_CHARS:
        raise InvalidRecord(f"the SMS is {len(text)} characters, over {MAX_SMS_CHARS}")
    info = encode_info(text)
    if info.segments > max_segments:
        raise InvalidRecord(
            f"the SMS needs {info.segments} {info.encoding} segments, over {max_segments}"
        )
    return SmsBody(text, info)
