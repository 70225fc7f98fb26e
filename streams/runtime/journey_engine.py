"""The journey engine the settings describe, for the worker (streams/agents/journeys_app.py)
and ``cartpulse journeys`` alike: apart from streams/runtime/policy_file.py, which the senders read
the
policy through without pulling in the engine."""

from __future__ import annotations

from pathlib import Path

from streams.contract.errors import ConfigurationError
from streams.core.journeys import JourneyEngine
from streams.runtime.policy_file import load_policy
from streams.runtime.settings import Settings


def journey_engine(
    settings: Settings, policy_path: Path | None = None, dry_run: bool = False
) -> JourneyEngine:
    """The engine the settings describe (``policy_path`` overrides their policy file); a policy
    with coupons needs the coupon secret. Raises ``ConfigurationError``."""
    policy = load_policy(policy_path or settings.policy_file)
    secret = settings.coupon_secret.get_secret_value()
    needs = any(step.incentive for flow in policy.flows.values() for step in flow.steps)
    if needs and not secret:
        raise ConfigurationError(
            "the flow policy offers coupons: set CARTPULSE_COUPON_SECRET (the HMAC key that "
            "makes codes unguessable), or remove 'incentive = true' from its steps"
        )
    return JourneyEngine(policy, secret.encode(), dry_run or settings.journeys_dry_run)
