"""Short SMS links on the real stack: an SMS sender replica, the consent mirror and the
webhooks service in this process, Kafka, Redis and the Twilio test server. The shipped policy's
store has a ``short_link_base``; the commands' store falls back to it."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from senders.core.keys import Keys
from senders.messages.short_links import MAX_LINK_CHARS, LinkRecord, short_id
from streams.runtime.policy_file import load_policy
from streams.runtime.settings import Settings
from tests.conftest import consume_all
from tests.senders.conftest import command, produce_commands, results
from tests.support.webhooks import CLICK_SECRET
from tests.twilio_server import TwilioTestServer
from tests.webhooks.test_stack import sms_stack, webhook_settings

pytestmark = pytest.mark.integration

# A store's own cart link: alone it makes the SMS two segments.
CART = (
    "https://shop.example.com/cart/recover?token=8f2c1e9a7b3d4c5e6f708192a3b4c5d6"
    "&utm_source=sms&utm_medium=cartpulse&utm_campaign=cart_sms_1"
)


async def test_an_sms_carries_a_short_link_that_redirects_and_records_one_click(
    settings: Settings, key_prefix: str, redis: Redis, twilio: TwilioTestServer
) -> None:
    [base] = {s.short_link_base for s in load_policy().stores.values() if s.short_link_base}
    s = webhook_settings(settings, key_prefix, twilio)
    cmd = command(to="+14155550401")
    cmd = cmd.model_copy(update={"variables": {**cmd.variables, "cart_url": CART}})
    async with sms_stack(s, redis, key_prefix, [cmd.customer_id]) as started:
        await produce_commands(s, [cmd, cmd])  # and redelivered: one SMS, the same link
        found = await results(s, 2)
        await asyncio.wait_for(started.wait(), 30)

        [request] = twilio.requests
        body = request.form["Body"]
        links = re.findall(r"https?://\S+", body)
        assert len(links) == 1 and CART not in body
        [link] = links
        assert link.startswith(base) and len(link) <= MAX_LINK_CHARS
        assert (
            link == f"{base}{short_id(CLICK_SECRET, cmd.command_id, CART, len(link) - len(base))}"
        )
        assert body.endswith("\nReply STOP to opt out.")
        assert sorted(r.status for r in found) == ["duplicate", "sent"]
        assert {r.segments for r in found} == {1}  # with the store's own link it would be 2

        link_id = link.removeprefix(base)
        local = f"http://127.0.0.1:{s.webhooks_port}/c/"
        async with aiohttp.ClientSession() as http:
            click = await http.get(f"{local}{link_id}", allow_redirects=False)
            assert click.status == 302 and click.headers["Location"] == CART
            forged = short_id(b"not the key", cmd.command_id, CART)
            unknown = await http.get(f"{local}{forged}", allow_redirects=False)
            assert unknown.status == 404 and "Location" not in unknown.headers
            assert "This link does not work" in await unknown.text()

    record = await redis.get(Keys(key_prefix).short_link(link_id))
    assert record is not None
    registered = LinkRecord.from_json(record)
    assert (registered.url, registered.command_id, registered.channel) == (
        CART,
        cmd.command_id,
        "sms",
    )
    [clicked] = await consume_all(s, f"{s.topic_prefix}engagement", 1)
    assert clicked.key == cmd.customer_id.encode()
    event = orjson.loads(clicked.value)
    assert (event["type"], event["channel"], event["command_id"], event["url"]) == (
        "link_clicked",
        "sms",
        cmd.command_id,
        CART,
    )
