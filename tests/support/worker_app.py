"""The worker's Faust app, built in an interpreter of its own: a Faust app leaves an event loop
behind, which would fail a later test of this one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BUILD = (
    "from prometheus_client import CollectorRegistry\n"
    "from streams.agents.app import create_app\n"
    "from streams.runtime.settings import load_settings\n"
    "app, _ = create_app(load_settings(), CollectorRegistry())\n"
)


def worker_app_prints(tmp_path: Path, body: str, env: dict[str, str | None]) -> str:
    """What ``body`` prints, run once ``app`` is the worker's app over the settings of the
    environment with ``env`` (a None value removes the variable), memory tables under
    ``tmp_path``."""
    full = {
        **os.environ,
        "CARTPULSE_STORE": "memory://",
        "CARTPULSE_DATA_DIR": str(tmp_path),
        "CARTPULSE_COUPON_SECRET": "test-coupon-secret",
    }
    for name, value in env.items():
        full.pop(name, None)
        if value is not None:
            full[name] = value
    done = subprocess.run(
        [sys.executable, "-c", BUILD + body],
        env=full,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout
