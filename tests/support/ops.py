"""The monitoring files under deploy/, and reading the deployment's YAML."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "cartpulse.json"
METRIC_NAME = re.compile(r"cartpulse_[a-z0-9_]+")  # a metric name in a query, a rule or a doc


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))
