"""The ``workers`` topic on the real broker: what a worker says it runs is what the watermark
command goes by, and the latest word wins."""

from __future__ import annotations

import pytest

from streams.agents.roster import agents_of, announce
from streams.contract.topics import TopicCatalogue
from streams.runtime.kafka import create_topics
from streams.runtime.settings import Settings, load_settings
from streams.tools.watermark import runs_journeys

pytestmark = pytest.mark.integration


async def test_the_latest_announcement_says_what_the_worker_runs(settings: Settings) -> None:
    await create_topics(settings, TopicCatalogue(settings.topic_prefix).specs())
    assert await agents_of(settings) is None  # never said: the watermark waits for no journeys
    assert not await runs_journeys(settings)

    with_journeys = load_settings(**{**settings.model_dump(), "journeys_enabled": True})
    await announce(with_journeys)
    assert await agents_of(settings) == {"detector", "journeys"}
    assert await runs_journeys(settings)

    # Restarted without the journeys: its changelog topics remain, but its word has changed.
    detector_only = load_settings(**{**settings.model_dump(), "journeys_enabled": False})
    await announce(detector_only)
    assert await agents_of(settings) == {"detector"}
    assert not await runs_journeys(settings)

    other = load_settings(**{**settings.model_dump(), "worker_id": "another-worker"})
    assert await agents_of(other) is None  # keyed by worker id
