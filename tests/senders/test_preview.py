"""``cartpulse preview`` renders commands through the senders' own adapters, sending nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path

from senders.adapters.providers import provider_for
from senders.adapters.twilio_sms import SmsMessage
from senders.runtime.preview import preview_settings
from streams.runtime.policy_file import load_policy
from streams.runtime.settings import Settings
from tests.senders.conftest import command


def _preview(tmp_path: Path, lines: list[bytes], *extra: str) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "commands.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTPULSE_")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "preview", "--commands", str(source),
         "--output", str(tmp_path / "out"), *extra],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_preview_writes_what_the_senders_would_send(tmp_path: Path) -> None:
    sms = command("sms", variables={**command().variables, "store_name": "Mugs & Co"})
    email = command("email", to="ann@example.com")
    done = _preview(tmp_path, [sms.to_json(), email.to_json()])
    assert done.returncode == 0, done.stderr
    assert "1 emails and 1 SMS rendered" in done.stdout
    out = tmp_path / "out"
    (sms_file,) = out.glob("*.sms.txt")
    text = sms_file.read_text()
    # The body is exactly what the SMS sender would post.
    settings = preview_settings(Settings())
    sender = provider_for(settings, "sms", load_policy())
    expected = sender.prepare(sms, (sms.not_before or sms.created_at).timestamp())
    assert isinstance(expected, SmsMessage)
    assert text.endswith("\n\n" + expected.body.text + "\n")
    # the shipped store's short link, as the sender would send it (not registered: not sent)
    [link] = expected.links
    assert link.url == sms.variables["cart_url"] and link.short_url in text
    assert sms.variables["cart_url"] not in text
    assert text.startswith(f"To: {sms.to}\nFrom: +15005550006\nSegments: 1\nEncoding: GSM-7\n")
    assert expected.body.text.endswith("\nReply STOP to opt out.")
    (eml,) = out.glob("*.eml")
    message = message_from_bytes(eml.read_bytes(), policy=email_policy.default)
    assert isinstance(message, EmailMessage)
    assert message["To"] == "ann@example.com"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Cartpulse-Command"] == email.command_id
    html_part = message.get_body(("html",))
    assert html_part is not None
    assert "Cartpulse Shop, 100 Example Street" in html_part.get_content()
    index = (out / "index.html").read_text()
    assert email.command_id in index and sms.command_id in index
    assert "Reply STOP to opt out." in index and "<iframe" in index


def test_preview_fails_naming_each_command_it_cannot_render(tmp_path: Path) -> None:
    good = command("email", to="ann@example.com")
    variables = {k: v for k, v in good.variables.items() if k != "store_postal_address"}
    no_address = command("email", to="bo@example.com", variables=variables)
    missing = command("sms", template="no_such_template")
    done = _preview(tmp_path, [good.to_json(), b"{not json", no_address.to_json(),
                               missing.to_json()])  # fmt: skip
    assert done.returncode == 1
    assert "1 emails and 0 SMS rendered" in done.stdout
    problems = [line.strip() for line in done.stderr.strip().splitlines()]
    assert len(problems) == 3
    assert problems[0].startswith("line 2 (no command_id): ")
    assert problems[1].startswith(f"line 3 ({no_address.command_id}): missing_postal_address")
    assert problems[2].startswith(f"line 4 ({missing.command_id}): no template")
    assert len(list((tmp_path / "out").glob("*.eml"))) == 1


def test_preview_renders_every_shipped_template_in_every_locale_from_journeys(
    tmp_path: Path,
) -> None:
    """The offline pipeline a store team runs: simulate → detect → journeys → preview."""
    import orjson

    from streams.offline.audience import AudienceConfig, audience
    from streams.runtime.policy_file import default_policy_text

    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTPULSE_")}
    env["CARTPULSE_COUPON_SECRET"] = "preview-test"

    def cli(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (args, done.stdout, done.stderr)

    events = tmp_path / "events.jsonl"
    cli("simulate", "--events", "8000", "--rate", "5", "--shoppers", "400", "--seed", "3",
        "--start", "2026-06-01T12:00:00Z", "--output", str(events))  # fmt: skip
    customers, consents = tmp_path / "customers.jsonl", tmp_path / "consents.jsonl"
    locales = ["en", "de", "fr", "es"]
    with customers.open("wb") as cust, consents.open("wb") as cons:
        config = AudienceConfig(400, recorded_at_ms=1_780_000_000_000, sms_opt_in=1, email_opt_in=1)
        for n, record in enumerate(audience(config)):
            value = dict(record.value)
            if "phone" in value:
                value["locale"] = locales[(n // 3) % 4]
                cust.write(orjson.dumps(value) + b"\n")
            else:
                cons.write(orjson.dumps(value) + b"\n")
    policy = tmp_path / "policy.toml"
    policy.write_text(default_policy_text().replace("enabled = false", "enabled = true"))
    abandonments, commands = tmp_path / "abandonments.jsonl", tmp_path / "commands.jsonl"
    cli("detect", "--input", str(events), "--flush", "--output", str(abandonments))
    cli("journeys", "--abandonments", str(abandonments), "--customers", str(customers),
        "--consents", str(consents), "--orders", str(events), "--policy", str(policy),
        "--output", str(commands))  # fmt: skip
    lines = commands.read_bytes().splitlines()
    seen = {(c["template"], c["locale"]) for c in map(orjson.loads, lines)}
    templates = {"cart_sms_1", "cart_email_1", "cart_email_2", "browse_email_1", "browse_sms_1",
                 "checkout_email_1", "cart_email_vip_1"}  # fmt: skip
    assert seen == {(t, loc) for t in templates for loc in locales}
    done = _preview(tmp_path, lines, "--policy", str(policy))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    assert len(list(out.glob("*.eml"))) + len(list(out.glob("*.sms.txt"))) == len(lines)
