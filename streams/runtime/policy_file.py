"""Reading the flow policy file: the shipped default, or the user's TOML."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path

from streams.contract.errors import ConfigurationError
from streams.core.policy import Policy, parse_policy
from streams.core.policy_reader import Reader

DEFAULT_POLICY = "default.toml"


def default_policy_text() -> str:
    return resources.files("streams.policies").joinpath(DEFAULT_POLICY).read_text("utf-8")


def load_policy(path: Path | None = None) -> Policy:
    """The policy in ``path``, or the shipped default; raises ``ConfigurationError``."""
    if path is None:
        return parse_policy(default_policy_text(), "default.toml")
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the policy file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path}: the policy file must be UTF-8") from None
    policy = parse_policy(text, str(path))
    folders = {
        store_id: replace(store, templates=str((path.parent / store.templates).resolve()))
        for store_id, store in policy.stores.items()
        if store.templates is not None
    }  # a store's template folder is relative to the policy file
    return replace(policy, stores={**policy.stores, **folders}) if folders else policy


def policy_location(path: Path | None) -> Callable[[str], str]:
    """``field → "file:line"`` for the policy in ``path`` (the shipped default when None)."""
    if path is None:
        reader = Reader(default_policy_text(), DEFAULT_POLICY)
    else:
        try:
            reader = Reader(path.read_text("utf-8"), str(path))
        except (OSError, UnicodeDecodeError):
            reader = Reader("", str(path))
    return lambda field: reader.where(field)
