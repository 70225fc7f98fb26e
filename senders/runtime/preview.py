"""``cartpulse preview``: send commands rendered exactly as the senders would, never sent.

Each command goes through its channel's provider adapter (``TwilioSms`` / ``SmtpEmail``) as
built by ``senders.adapters.providers.provider_for`` — the same template lookup, composition,
opt-out
rule, link rewriting and headers as a live sender — at the command's own ``not_before``. The
output folder gets one ``.eml`` per email, one ``.sms.txt`` per SMS (with its segments and
encoding) and an ``index.html`` that shows them side by side.

Credentials the preview does not use (Twilio's, the SMTP relay's) may be unset; unsubscribe and
click links are signed with ``CARTPULSE_UNSUBSCRIBE_SECRET`` / ``CARTPULSE_CLICK_SECRET`` when
set, else with a placeholder key (the links then only show their shape). An SMS shows the short
links the sender would send (the same ids with the same key), which the preview does not
register: they resolve once the sender has sent the message.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from senders.adapters.providers import provider_for
from senders.adapters.smtp_email import EmailMessage
from senders.adapters.twilio_sms import SmsMessage
from streams.contract.commands import SendCommand, parse_command
from streams.contract.errors import InvalidRecord
from streams.core.policy import Policy
from streams.runtime.settings import Settings

PLACEHOLDER_SID = "AC" + "0" * 32


@dataclass(frozen=True, slots=True)
class Preview:
    """One command's rendering: the file written, or why it could not be rendered."""

    number: int
    command_id: str | None
    channel: str | None
    file: str | None = None
    summary: str = ""
    error: str | None = None


def preview_settings(settings: Settings) -> Settings:
    """``settings`` with placeholders where only a live send needs a value."""
    update: dict[str, Any] = {}
    if not settings.twilio_account_sid:
        update["twilio_account_sid"] = PLACEHOLDER_SID
    if not settings.twilio_auth_token.get_secret_value():
        update["twilio_auth_token"] = SecretStr("preview")
    if not (settings.twilio_from or settings.twilio_messaging_service_sid):
        update["twilio_from"] = "+15005550006"
    if not settings.unsubscribe_secret.get_secret_value():
        update["unsubscribe_secret"] = SecretStr("preview-placeholder")
    if not settings.click_secret.get_secret_value():  # email click tokens, short SMS link ids
        update["click_secret"] = SecretStr("preview-placeholder")
    return settings.model_copy(update=update)


def render_previews(
    lines: Iterable[bytes], settings: Settings, policy: Policy, out: Path
) -> list[Preview]:
    """Render every command line into ``out``; returns one ``Preview`` per non-blank line."""
    settings = preview_settings(settings)
    out.mkdir(parents=True, exist_ok=True)
    providers: dict[str, Any] = {}
    previews: list[Preview] = []
    for number, raw in _numbered(lines):
        try:
            command = parse_command(raw)
        except InvalidRecord as exc:
            previews.append(Preview(number, None, None, error=exc.reason))
            continue
        if command.channel not in providers:
            providers[command.channel] = provider_for(settings, command.channel, policy)
        provider = providers[command.channel]
        now = (command.not_before or command.created_at).timestamp()
        try:
            message = provider.prepare(command, now)
        except InvalidRecord as exc:
            previews.append(Preview(number, command.command_id, command.channel, error=exc.reason))
            continue
        stem = f"{number:04d}-{command.channel}-{command.command_id}"
        if isinstance(message, SmsMessage):
            previews.append(
                _write_sms(
                    out, stem, number, command, message, provider.form(message, command, now)
                )
            )
        else:
            assert isinstance(message, EmailMessage)  # noqa: S101 - the two providers' types
            (out / f"{stem}.eml").write_bytes(message.data)
            subject = message_from_bytes(message.data, policy=email_policy.default)["Subject"]
            previews.append(
                Preview(number, command.command_id, "email", f"{stem}.eml", str(subject))
            )
    (out / "index.html").write_text(_index(out, previews), "utf-8")
    return previews


def _numbered(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(lines, 1):
        if line.strip():
            yield number, line.strip()


def _write_sms(
    out: Path,
    stem: str,
    number: int,
    command: SendCommand,
    message: SmsMessage,
    form: dict[str, str],
) -> Preview:
    body = message.body
    sender = form.get("MessagingServiceSid") or form.get("From", "")
    cost = f"{body.segments} segment{'s' * (body.segments != 1)}, {body.encoding.encoding}"
    header = (
        f"To: {form['To']}\nFrom: {sender}\nSegments: {body.segments}\n"
        f"Encoding: {body.encoding.encoding}\nCharacters: {len(body.text)}\n\n"
    )
    (out / f"{stem}.sms.txt").write_text(header + body.text + "\n", "utf-8")
    return Preview(number, command.command_id, "sms", f"{stem}.sms.txt", cost)


def _index(out: Path, previews: list[Preview]) -> str:
    rows = []
    for p in previews:
        label = f"#{p.number} {p.channel or '?'} {html.escape(p.command_id or '')}"
        if p.error is not None:
            rows.append(
                f'<section class="bad"><h2>{label}</h2><p>{html.escape(p.error)}</p></section>'
            )
        elif p.channel == "sms" and p.file:
            text = (out / p.file).read_text("utf-8").split("\n\n", 1)[1]
            rows.append(
                f"<section><h2>{label} · {html.escape(p.summary)}</h2>"
                f'<div class="sms">{html.escape(text)}</div></section>'
            )
        elif p.file:
            mail = message_from_bytes((out / p.file).read_bytes(), policy=email_policy.default)
            part = mail.get_body(("html",))
            page = part.get_content() if part is not None else ""
            rows.append(
                f"<section><h2>{label} · {html.escape(p.summary)} · "
                f'<a href="{html.escape(p.file)}">.eml</a></h2>'
                f'<iframe sandbox="" srcdoc="{html.escape(page)}"></iframe></section>'
            )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>cartpulse preview</title><style>"
        "body{font-family:system-ui,sans-serif;margin:1rem;display:flex;flex-wrap:wrap;gap:1rem}"
        "section{flex:0 0 420px}h2{font-size:.85rem;font-weight:600}"
        "iframe{width:375px;height:700px;border:1px solid #ccc}"
        ".sms{white-space:pre-wrap;background:#e9e9eb;border-radius:1rem;padding:.75rem;"
        "max-width:320px}.bad p{color:#a00}"
        "</style></head><body>" + "".join(rows) + "</body></html>\n"
    )
