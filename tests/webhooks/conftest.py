"""The webhooks' integration tests reuse the sender fixtures: Redis under a per-test key
prefix and the Twilio test server (``tests/conftest.py`` gives Kafka and unique topics)."""

from __future__ import annotations

from tests.senders.conftest import key_prefix, redis, twilio  # noqa: F401 - shared fixtures
