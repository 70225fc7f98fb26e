"""Every ``CARTPULSE_*`` name the setup guides write is a setting (streams/runtime/settings.py).

docs/providers.md and docs/integrate.md tell operators what to set; a renamed or invented name
would be silently ignored by pydantic-settings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.runtime.settings import Settings

DOCS = Path(__file__).parent.parent.parent / "docs"
SETTINGS = {f"CARTPULSE_{name.upper()}" for name in Settings.model_fields}


def names(text: str) -> set[str]:
    """The settings ``text`` names; a shorthand is read as the first expansion that is a setting
    (``CARTPULSE_TWILIO_FROM`` / ``_MESSAGING_SERVICE_SID`` → ``CARTPULSE_TWILIO_MESSAGING_…``).
    A name followed by ``_*`` is a family, not a setting."""
    found: set[str] = set()
    pattern = r"(CARTPULSE_[A-Z0-9_]*[A-Z0-9])(_\*)?((?:` / `_[A-Z0-9_]+)*)"
    for full, family, rest in re.findall(pattern, text):
        if family:
            continue
        found.add(full)
        words = full.split("_")
        for short in re.findall(r"_([A-Z0-9_]+)", rest):
            options = [f"{'_'.join(words[:k])}_{short}" for k in range(len(words) - 1, 0, -1)]
            found.add(next((o for o in options if o in SETTINGS), options[0]))
    return found


@pytest.mark.parametrize("doc", ["providers.md", "integrate.md"])
def test_every_setting_a_guide_names_exists(doc: str) -> None:
    written = names((DOCS / doc).read_text(encoding="utf-8"))
    assert written - SETTINGS == set()
    if doc == "providers.md":
        assert {"CARTPULSE_TWILIO_ACCOUNT_SID", "CARTPULSE_SMTP_HOST"} <= written


def test_shorthands_expand_like_the_guides_mean_them() -> None:
    assert names("`CARTPULSE_SMS_ACCOUNT_RATE` / `_ACCOUNT_BURST`") == {
        "CARTPULSE_SMS_ACCOUNT_RATE",
        "CARTPULSE_SMS_ACCOUNT_BURST",
    }
