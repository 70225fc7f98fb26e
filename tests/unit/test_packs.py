"""Template packs: lookup order, locale fallback, and the load-time check of a policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from senders.messages.packs import SHIPPED, Packs, StorePack, check_templates, require_templates
from streams.contract.errors import ConfigurationError
from streams.core.policy import parse_policy
from streams.runtime.policy_file import load_policy, policy_location
from streams.runtime.settings import Settings

POLICY = """
[stores.default]
timezone = "Europe/Berlin"
brand = "Kaffee & Co"
locale = "de"
postal_address = "Kaffee & Co, Hauptstr. 1, 10115 Berlin"
{templates}

[flows.cart]
trigger = "cart"

[[flows.cart.steps]]
after = "1h"
channel = "sms"
template = "{template}"
"""


def _write(folder: Path, name: str, text: str = "x") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def test_locales_fall_back_to_the_language_the_store_then_english() -> None:
    packs = Packs(stores={"s": StorePack(None, "fr-CA")})
    assert packs.locales("de-AT", "s") == ["de-AT", "de", "fr-CA", "fr", "en"]
    assert packs.locales("en", "s") == ["en", "fr-CA", "fr"]
    assert packs.locales("pt_BR", "unknown") == ["pt_BR", "pt", "en"]  # no default store


def test_the_store_folder_then_the_pack_then_the_shipped_templates(tmp_path: Path) -> None:
    store, pack, shipped = tmp_path / "store", tmp_path / "pack", tmp_path / "shipped"
    _write(shipped, "t.en.sms.j2")
    packs = Packs(shipped, pack, {"s": StorePack(store, "en")})
    assert packs.find("t", "en", "sms", "s") == shipped / "t.en.sms.j2"
    assert packs.find("t", "en", "sms", "s") == shipped / "t.en.sms.j2"
    _write(pack, "t.en.sms.j2")
    assert packs.find("t", "en", "sms", "s") == pack / "t.en.sms.j2"
    _write(store, "t.en.sms.j2")
    assert packs.find("t", "en", "sms", "s") == store / "t.en.sms.j2"
    assert packs.find("t", "en", "sms", "other") == pack / "t.en.sms.j2"  # no own folder
    # The shopper's language first: shipped German beats the store's English.
    _write(shipped, "t.de.sms.j2")
    assert packs.find("t", "de-AT", "sms", "s") == shipped / "t.de.sms.j2"
    assert packs.find("nope", "en", "sms", "s") is None


def test_a_missing_template_is_refused_with_file_line_store_and_template(tmp_path: Path) -> None:
    text = POLICY.format(templates="", template="cart_sms_9")
    source = tmp_path / "policy.toml"
    source.write_text(text)
    policy = load_policy(source)
    with pytest.raises(ConfigurationError) as err:
        require_templates(policy, Packs.of(Settings(), policy), policy_location(source))
    line = text.splitlines().index('template = "cart_sms_9"') + 1
    assert str(err.value) == (
        f"{source}:{line}: store 'default': flows.cart.steps[0].template: no "
        f"cart_sms_9.<locale>.sms.j2 for locale 'de' or any fallback (looked in {SHIPPED})"
    )


def test_a_fallback_language_is_a_warning_and_a_store_folder_can_fill_it(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    text = POLICY.format(templates='templates = "mine"', template="welcome")
    source = tmp_path / "policy.toml"
    source.write_text(text)
    _write(tmp_path / "mine", "welcome.en.sms.j2")
    policy = load_policy(source)
    assert policy.stores["default"].templates == str(tmp_path / "mine")  # beside the file
    packs = Packs.of(Settings(), policy)
    (warning,) = require_templates(policy, packs, policy_location(source))
    assert "no welcome.<locale>.sms.j2 in 'de': its shoppers get the 'en' text" in warning
    _write(tmp_path / "mine", "welcome.de.sms.j2")
    assert check_templates(policy, packs) == []


def test_a_store_folder_or_pack_that_is_not_a_folder_is_refused(tmp_path: Path) -> None:
    policy = parse_policy(POLICY.format(templates='templates = "/nowhere"', template="cart_sms_1"))
    with pytest.raises(ConfigurationError, match=r"stores\.default\.templates: /nowhere"):
        Packs.of(Settings(), policy)
    policy = parse_policy(POLICY.format(templates="", template="cart_sms_1"))
    with pytest.raises(ConfigurationError, match="CARTPULSE_TEMPLATES_DIR"):
        Packs.of(Settings(templates_dir=tmp_path / "none"), policy)


@pytest.mark.parametrize("value", ['"english"', "1", '"de_AT!"'])
def test_a_store_locale_must_be_a_locale(value: str) -> None:
    text = POLICY.format(templates="", template="cart_sms_1").replace('"de"', value, 1)
    with pytest.raises(ConfigurationError, match=r"stores\.default\.locale"):
        parse_policy(text, "p.toml")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTPULSE_")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "policy", "check", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_policy_check_on_the_shipped_policy() -> None:
    done = _cli()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("the shipped policy: valid; flows: ")
    assert "\ntrigger cart:\n  1. " in done.stdout  # the outline of the flows follows
    assert "CARTPULSE_COUPON_SECRET is not set" in done.stderr  # a warning only
    assert _cli("--strict").returncode == 1


def test_policy_check_refuses_a_missing_template_and_warns_of_no_postal_address(
    tmp_path: Path,
) -> None:
    source = tmp_path / "p.toml"
    source.write_text(POLICY.format(templates="", template="cart_sms_9"))
    done = _cli(str(source))
    assert done.returncode == 2
    assert done.stderr.startswith(f"cartpulse: {source}:") and "cart_sms_9" in done.stderr
    email = POLICY.format(templates="", template="cart_email_1").replace('"sms"', '"email"')
    email = email.replace('postal_address = "Kaffee & Co, Hauptstr. 1, 10115 Berlin"', "")
    source.write_text(email)
    done = _cli(str(source))
    assert done.returncode == 0, done.stderr
    assert "stores.default: no postal_address" in done.stderr


@pytest.mark.parametrize("policy", [None, "deploy/local/demo-policy.toml"])
def test_the_shipped_and_demo_policies_pass_the_strict_check(policy: str | None) -> None:
    root = Path(__file__).resolve().parents[2]
    args = [str(root / policy)] if policy else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTPULSE_")}
    env |= {"CARTPULSE_COUPON_SECRET": "c", "CARTPULSE_CLICK_SECRET": "k"}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "policy", "check", "--strict", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False, cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
