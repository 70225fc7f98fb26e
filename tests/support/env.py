"""Settings as the environment of another process (sender replicas, the demo's workers)."""

from __future__ import annotations

from datetime import timedelta

import orjson
from pydantic import SecretStr

from streams.runtime.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """``CARTPULSE_*`` variables that rebuild ``settings`` in another process."""
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, timedelta):
            value = f"PT{value.total_seconds()}S"
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, tuple | list | dict):  # complex settings are JSON in the env
            value = orjson.dumps(value).decode()
        env[f"CARTPULSE_{name.upper()}"] = str(value)
    return env
