"""Reading the flow policy file: the shipped default, or the user's TOML."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from streams.core.policy import Policy, parse_policy
from streams.errors import ConfigurationError

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
    return parse_policy(text, str(path))
