"""The webhooks' HTTP surface on in-memory ports: status codes, ledger records, dedup, limits."""

from __future__ import annotations

import io
import logging
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import test_utils

from senders.adapters.consents import Consent, address_subject
from senders.core.keys import address_hash
from senders.messages.short_links import LinkRecord, short_id
from senders.messages.tokens import ClickToken, make_click_token
from senders.messages.unsubscribe import UnsubscribeToken, make_token, unsubscribe_url
from senders.webhooks.dedup import PENDING_TTL
from senders.webhooks.keywords import HELP, OPT_IN, OPT_OUT, Keywords
from senders.webhooks.routes import signed_url
from senders.webhooks.twilio import TwilioConfig
from tests.support.webhooks import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CLICK_SECRET,
    HELP_REPLY,
    MAX_BODY,
    PUBLIC_URL,
    UNSUBSCRIBE_SECRET,
    World,
    inbound_form,
    post_signed,
    sign,
    world,
)

NUMBER = "+14155550100"
STATUS_PATH = "/twilio/status?command_id=cmd-1"


def status_form(
    status: str = "delivered", sid: str = "SM" + "b" * 32, **extra: str
) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "MessageStatus": status,
        "AccountSid": ACCOUNT_SID,
        "To": NUMBER,
        "From": "+15005550006",
        **extra,
    }


# --- signatures -------------------------------------------------------------------------


async def test_status_callback_signatures() -> None:
    async with world() as w:
        form = status_form()
        url = f"{PUBLIC_URL}{STATUS_PATH}"
        good = sign(url, form)
        tampered = urlencode({**form, "MessageStatus": "failed"})
        answers = {
            "tampered body": await w.client.post(
                STATUS_PATH,
                data=tampered,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": good,
                },
            ),
            "wrong url": await post_signed(
                w, STATUS_PATH, form, signed_url=f"{PUBLIC_URL}/twilio/status?command_id=cmd-2"
            ),
            "wrong host": await post_signed(
                w, STATUS_PATH, form, signed_url=f"https://evil.example{STATUS_PATH}"
            ),
            "wrong token": await post_signed(w, STATUS_PATH, form, signature=sign(url, form, "x")),
            "missing header": await w.client.post(
                STATUS_PATH,
                data=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
        }
        assert {name: r.status for name, r in answers.items()} == dict.fromkeys(answers, 403)
        assert w.outbox.results == [] and w.seen.seen == {}
        valid = await post_signed(w, STATUS_PATH, form)
        assert valid.status == 200
        assert [r.status for r in w.outbox.results] == ["delivered"]
        assert w.metric(
            "cartpulse_webhook_requests_total", {"route": "sms_status", "outcome": "forbidden"}
        ) == len(answers)


async def test_inbound_signatures_are_checked_before_anything_is_recorded() -> None:
    async with world() as w:
        form = inbound_form("STOP")
        for signature in ("", "bm90IGl0", sign(f"{PUBLIC_URL}/twilio/status", form)):
            answer = await post_signed(w, "/twilio/sms", form, signature=signature)
            assert answer.status == 403
        tampered = await w.client.post(
            "/twilio/sms",
            data=urlencode({**form, "From": "+14155550199"}),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": sign(f"{PUBLIC_URL}/twilio/sms", form),
            },
        )
        assert tampered.status == 403
        assert w.outbox.consents == [] and w.consents.consents == {}


# --- keywords -> the ledger -------------------------------------------------------------


def bodies(words: frozenset[str]) -> list[str]:
    return [
        variant
        for word in sorted(words)
        for variant in (word, word.lower(), word.title(), f"  {word.lower()} \n")
    ]


@pytest.mark.parametrize(
    ("body", "status"),
    [(b, "opted_out") for b in bodies(OPT_OUT)] + [(b, "opted_in") for b in bodies(OPT_IN)],
)
async def test_every_keyword_and_casing_writes_the_right_ledger_record(
    body: str, status: str
) -> None:
    async with world() as w:
        w.directory.numbers[NUMBER] = ["cust-2", "cust-1"]
        form = inbound_form(body)
        answer = await post_signed(w, "/twilio/sms", form)
        assert answer.status == 200
        assert answer.content_type == "application/xml"
        keys = [key for key, _ in w.outbox.consents]
        assert keys == [f"addr:{address_hash(NUMBER)}:sms".encode(), b"cust-2:sms", b"cust-1:sms"]
        for _, record in w.outbox.consents:
            assert record["status"] == status
            assert record["source"] == "sms_keyword"
            assert record["channel"] == "sms"
            assert record["recorded_at"] == "2023-11-14T22:13:20.000Z"  # the fake clock
            evidence = record["evidence"]
            assert evidence["keyword"] == body.strip().upper()
            assert evidence["form"] == {k: [v] for k, v in form.items()}
            assert evidence["url"] == f"{PUBLIC_URL}/twilio/sms"
            assert evidence["signature"] == sign(evidence["url"], form)  # replayable proof
            assert evidence["resolved_customers"] == ["cust-2", "cust-1"]
        for subject in (address_subject(NUMBER), "cust-1", "cust-2"):
            assert w.consents.consents[(subject, "sms")] == Consent(
                status,  # type: ignore[arg-type]
                1_700_000_000_000,
                "sms_keyword",
            )


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ("REVOKE", "REVOKE"),
        ("OPTOUT", "OPTOUT"),
        ("OPT OUT", "OPTOUT"),
        ("opt-out", "OPTOUT"),
        ("STOP ALL", "STOPALL"),
        ("stop stop", "STOP"),
        ("Stop?", "STOP"),
        ('"STOP"', "STOP"),
        ("\uff33\uff34\uff2f\uff30", "STOP"),
        ("STOP\u200b", "STOP"),
        ("\ufeffSTOP", "STOP"),
    ],
)
async def test_opt_outs_written_any_reasonable_way_are_recorded(body: str, word: str) -> None:
    async with world() as w:
        w.directory.numbers[NUMBER] = ["cust-1"]
        form = inbound_form(body)
        answer = await post_signed(w, "/twilio/sms", form)
        assert answer.status == 200
        assert [k for k, _ in w.outbox.consents] == [
            f"addr:{address_hash(NUMBER)}:sms".encode(),
            b"cust-1:sms",
        ]
        for _, record in w.outbox.consents:
            assert record["status"] == "opted_out"
            assert record["evidence"]["keyword"] == word
            assert record["evidence"]["form"]["Body"] == [body]  # as received
        assert w.consents.consents[("cust-1", "sms")].status == "opted_out"


async def test_opt_out_replies_and_opt_in_reply() -> None:
    async with world() as w:
        stop = await post_signed(w, "/twilio/sms", inbound_form("stop", sid="SM1"))
        start = await post_signed(w, "/twilio/sms", inbound_form("start", sid="SM2"))
        assert "<Message>" not in await stop.text()  # Twilio's own opt-out reply is enough
        assert "<Message>Welcome back</Message>" in await start.text()


@pytest.mark.parametrize("body", bodies(HELP))
async def test_help_gets_the_configured_reply_and_changes_nothing(body: str) -> None:
    async with world() as w:
        answer = await post_signed(w, "/twilio/sms", inbound_form(body))
        assert answer.status == 200
        text = await answer.text()
        assert text == (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
            f"{HELP_REPLY}</Message></Response>"
        )
        assert w.outbox.consents == []
        assert w.metric("cartpulse_webhook_keywords_total", {"kind": "help"}) == 1


async def test_an_ordinary_message_changes_nothing() -> None:
    async with world() as w:
        answer = await post_signed(w, "/twilio/sms", inbound_form("stop texting me please"))
        assert answer.status == 200
        assert await answer.text() == '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
        assert w.outbox.consents == []


async def test_configured_opt_out_keyword() -> None:
    async with world(extra_opt_outs=("ARRET",)) as w:
        assert (await post_signed(w, "/twilio/sms", inbound_form(" arret "))).status == 200
        assert [r["status"] for _, r in w.outbox.consents] == ["opted_out"]


async def test_a_number_nobody_was_texted_at_is_still_opted_out() -> None:
    async with world() as w:
        answer = await post_signed(w, "/twilio/sms", inbound_form("STOP", sender="+447700900123"))
        assert answer.status == 200
        assert [k for k, _ in w.outbox.consents] == [
            f"addr:{address_hash('+447700900123')}:sms".encode()
        ]
        assert w.metric("cartpulse_webhook_unresolved_numbers_total") == 1


async def test_a_retried_inbound_stop_is_recorded_once_and_answered_again() -> None:
    async with world() as w:
        form = inbound_form("STOP")
        first = await post_signed(w, "/twilio/sms", form)
        again = await post_signed(w, "/twilio/sms", form)
        assert first.status == again.status == 200
        assert await first.text() == await again.text()
        assert len(w.outbox.consents) == 1


# --- status callbacks -------------------------------------------------------------------


async def test_a_replayed_callback_is_recorded_once() -> None:
    async with world() as w:
        token = {"I-Twilio-Idempotency-Token": "idem-1"}
        for _ in range(3):  # same token: Twilio's retry
            assert (await post_signed(w, STATUS_PATH, status_form(), headers=token)).status == 200
        for _ in range(3):  # no token: the SID and status identify it
            answer = await post_signed(w, STATUS_PATH, status_form("failed", ErrorCode="30006"))
            assert answer.status == 200
        assert [(r.command_id, r.status, r.error_code) for r in w.outbox.results] == [
            ("cmd-1", "delivered", None),
            ("cmd-1", "failed", "30006"),
        ]
        assert w.outbox.results[0].provider_id == "SM" + "b" * 32
        assert w.outbox.results[0].channel == "sms"
        assert w.consents.undeliverable == {("sms", NUMBER): "30006"}
        assert (
            w.metric(
                "cartpulse_webhook_requests_total", {"route": "sms_status", "outcome": "duplicate"}
            )
            == 4
        )


@pytest.mark.parametrize("status", ["queued", "sent", "sending", "read", "accepted", ""])
async def test_non_final_statuses_are_ignored(status: str) -> None:
    async with world() as w:
        answer = await post_signed(w, STATUS_PATH, status_form(status))
        assert answer.status == 200
        assert w.outbox.results == []


async def test_a_callback_without_our_command_id_is_ignored() -> None:
    async with world() as w:
        assert (await post_signed(w, "/twilio/status", status_form())).status == 200
        assert w.outbox.results == []


async def test_kafka_down_means_503_and_the_retry_is_recorded() -> None:
    async with world() as w:
        w.outbox.down = True
        failed = await post_signed(w, STATUS_PATH, status_form())
        assert failed.status == 503 and failed.headers["Retry-After"] == "5"
        stop = await post_signed(w, "/twilio/sms", inbound_form("STOP"))
        assert stop.status == 503
        w.outbox.down = False
        assert (await post_signed(w, STATUS_PATH, status_form())).status == 200
        assert (await post_signed(w, "/twilio/sms", inbound_form("STOP"))).status == 200
        assert len(w.outbox.results) == 1 and len(w.outbox.consents) == 1


async def test_work_past_the_deadline_is_released_and_the_retry_does_it() -> None:
    async with world(handler_deadline=0.05) as w:
        w.outbox.stall = 5.0
        slow = await post_signed(w, "/twilio/sms", inbound_form("STOP"))
        assert slow.status == 503 and slow.headers["Retry-After"] == "5"
        assert w.seen.seen == {}  # released: the retry is not told "being handled"
        w.outbox.stall = 0.0
        assert (await post_signed(w, "/twilio/sms", inbound_form("STOP"))).status == 200
        assert len(w.outbox.consents) == 1


@pytest.mark.parametrize("deadline", [0.0, -1.0, float(PENDING_TTL), float(PENDING_TTL) + 1])
def test_a_deadline_the_pending_marker_would_not_outlive_is_refused(deadline: float) -> None:
    with pytest.raises(ValueError, match="handler_deadline"):
        TwilioConfig(AUTH_TOKEN, Keywords(), HELP_REPLY, "", "", deadline)


# --- unsubscribe and clicks -------------------------------------------------------------


def unsubscribe_path(customer: str = "cust-1", expires_ms: int = 1_800_000_000_000) -> str:
    token = make_token(
        UNSUBSCRIBE_SECRET, UnsubscribeToken(customer, "email", "store-1", expires_ms)
    )
    return unsubscribe_url("/unsubscribe", token)


async def test_one_click_unsubscribe_and_the_confirmation_page() -> None:
    async with world() as w:
        path = unsubscribe_path()
        page = await w.client.get(path)
        assert page.status == 200 and '<form method="post"' in await page.text()
        assert w.outbox.consents == []  # a GET (link scanner, preview) records nothing
        one_click = await w.client.post(
            path,
            data="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Gmail"},
        )
        assert one_click.status == 200
        from_page = await w.client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert from_page.status == 200
        form = aiohttp.FormData()
        form.add_field("List-Unsubscribe", "One-Click")
        form.add_field("f", io.BytesIO(b"x"), filename="f.txt")
        multipart = await w.client.post(path, data=form)
        assert multipart.status == 200
        assert [k for k, _ in w.outbox.consents] == [b"cust-1:email"] * 3
        record = w.outbox.consents[0][1]
        assert record["status"] == "opted_out" and record["source"] == "email_one_click"
        assert record["evidence"]["token"] == path.split("token=")[1]
        assert record["evidence"]["user_agent"] == "Gmail"
        assert w.consents.consents[("cust-1", "email")].status == "opted_out"


async def test_bad_unsubscribe_tokens_are_rejected() -> None:
    async with world() as w:
        good = unsubscribe_path("cust-1").split("token=")[1]
        other = unsubscribe_path("cust-2").split("token=")[1]
        expired = unsubscribe_path(expires_ms=1_600_000_000_000)
        forged = make_token(
            b"wrong", UnsubscribeToken("cust-1", "email", "store-1", 1_800_000_000_000)
        )
        for path in (
            expired,
            f"/unsubscribe?token={forged}",
            f"/unsubscribe?token={other.split('.')[0]}.{good.split('.')[1]}",  # other customer
            "/unsubscribe?token=",
            "/unsubscribe",
            "/unsubscribe?token=%00%ff",
        ):
            assert (await w.client.get(path)).status == 400, path
            assert (await w.client.post(path, data="List-Unsubscribe=One-Click")).status == 400
        assert w.outbox.consents == []


def click_path(
    url: str, customer: str = "cust-1", store: str = "store-1", expires_ms: int = 1_800_000_000_000
) -> str:
    token = make_click_token(CLICK_SECRET, ClickToken(customer, store, "cmd-1", url, expires_ms))
    return f"/c/{token}"


async def test_click_redirects_and_records_engagement() -> None:
    async with world() as w:
        answer = await w.client.get(
            click_path("https://shop.example.com/cart/1?utm=sms"), allow_redirects=False
        )
        assert answer.status == 302
        assert answer.headers["Location"] == "https://shop.example.com/cart/1?utm=sms"
        assert answer.headers["Cache-Control"] == "no-store"
        [(key, event)] = w.outbox.clicks
        assert key == b"cust-1"
        assert event["type"] == "link_clicked"
        assert (event["customer_id"], event["store_id"], event["command_id"]) == (
            "cust-1",
            "store-1",
            "cmd-1",
        )
        w.outbox.down = True  # Kafka trouble: the shopper still gets to the shop
        again = await w.client.get(click_path("https://shop.example.com/"), allow_redirects=False)
        assert again.status == 302
        assert w.metric("cartpulse_webhook_clicks_total", {"outcome": "lost"}) == 1


async def test_bad_clicks_are_refused_and_never_redirect_elsewhere() -> None:
    async with world() as w:
        good = click_path("https://shop.example.com/").removeprefix("/c/")
        other = click_path("https://shop.example.com/", customer="cust-2").removeprefix("/c/")
        forged = make_click_token(
            b"wrong",
            ClickToken("cust-1", "store-1", "c", "https://shop.example.com/", 1_800_000_000_000),
        )
        cases = {
            "expired": (click_path("https://shop.example.com/", expires_ms=1), 410),
            "forged": (f"/c/{forged}", 400),
            "other customer": (f"/c/{other.split('.')[0]}.{good.split('.')[1]}", 400),
            "evil host": (click_path("https://evil.example/"), 400),
            "look-alike": (click_path("https://shop.example.com.evil.example/"), 400),
            "credentials": (click_path("https://shop.example.com@evil.example/"), 400),
            "other store": (click_path("https://shop.example.com/", store="store-2"), 400),
            "garbage": ("/c/not%20a%20token", 400),
        }
        for name, (path, status) in cases.items():
            answer = await w.client.get(path, allow_redirects=False)
            assert answer.status == status, name
            assert "Location" not in answer.headers, name
        assert w.outbox.clicks == []


def short_link(
    w: World, url: str, expires_ms: int = 1_800_000_000_000, command_id: str = "cmd-9"
) -> str:
    """Register ``url`` as the SMS sender would; the path of its short link."""
    link_id = short_id(CLICK_SECRET, command_id, url)
    w.short_links.records[link_id] = LinkRecord(
        url, "cust-9", "store-1", command_id, "sms", expires_ms
    )
    return f"/c/{link_id}"


async def test_a_short_sms_link_redirects_and_records_the_click_as_an_email_click_is() -> None:
    async with world() as w:
        # any host: the sender registered it, nobody else can (no allowed-hosts list needed)
        url = "https://shop.example.org/cart/9?utm_source=sms"
        answer = await w.client.get(short_link(w, url), allow_redirects=False)
        assert answer.status == 302
        assert answer.headers["Location"] == url
        assert answer.headers["Cache-Control"] == "no-store"
        email = await w.client.get(click_path("https://shop.example.com/"), allow_redirects=False)
        assert email.status == 302
        [(key, event), (_, email_event)] = w.outbox.clicks
        assert key == b"cust-9"
        assert set(event) == set(email_event)  # one record shape for both channels
        assert (event["type"], event["channel"], email_event["channel"]) == (
            "link_clicked",
            "sms",
            "email",
        )
        assert (event["customer_id"], event["store_id"], event["command_id"], event["url"]) == (
            "cust-9",
            "store-1",
            "cmd-9",
            url,
        )
        assert w.metric("cartpulse_webhook_clicks_total", {"outcome": "redirected"}) == 2
        assert (
            w.metric("cartpulse_webhook_requests_total", {"route": "click", "outcome": "ok"}) == 2
        )


async def test_an_unknown_forged_or_expired_short_link_never_redirects() -> None:
    async with world() as w:
        real = short_link(w, "https://shop.example.com/cart/1")
        expired = short_link(w, "https://shop.example.com/cart/2", expires_ms=1)
        unsafe = short_link(w, "https://shop.example.com@evil.example/")
        forged = short_id(b"not the key", "cmd-9", "https://evil.example/")
        cases = {
            "unknown": (f"/c/{forged}", 404),
            "one character off": (f"{real[:-1]}{'A' if real[-1] != 'A' else 'B'}", 404),
            "expired": (expired, 410),
            "unsafe target": (unsafe, 404),
            "too long for an id": (f"{real}0", 400),
        }
        for name, (path, status) in cases.items():
            answer = await w.client.get(path, allow_redirects=False)
            assert answer.status == status, name
            assert "Location" not in answer.headers, name
            assert answer.headers["Content-Type"].startswith("text/html"), name
            page = await answer.text()
            assert "This link does not work" in page and "Traceback" not in page, name
        assert w.outbox.clicks == []
        assert (
            w.metric("cartpulse_webhook_requests_total", {"route": "click", "outcome": "expired"})
            == 1
        )


async def test_a_short_link_while_redis_is_down_is_a_page_asking_to_retry() -> None:
    async with world() as w:
        path = short_link(w, "https://shop.example.com/cart/1")
        w.short_links.down = True
        answer = await w.client.get(path, allow_redirects=False)
        assert answer.status == 503 and "Location" not in answer.headers
        assert answer.headers["Retry-After"] == "5"
        assert "Try again in a moment" in await answer.text()
        w.short_links.down = False
        assert (await w.client.get(path, allow_redirects=False)).status == 302


# --- limits and malformed input ---------------------------------------------------------


async def test_oversized_and_malformed_bodies_get_4xx() -> None:
    async with world() as w:
        big = {"Body": "STOP", "Pad": "x" * (MAX_BODY + 10), "From": NUMBER}
        answers = {
            "too large": await post_signed(w, "/twilio/sms", big),
            "too large unsubscribe": await w.client.post(
                unsubscribe_path(), data=b"x" * (MAX_BODY + 1)
            ),
            "not a form": await w.client.post(
                "/twilio/sms", data=b"{}", headers={"Content-Type": "application/json"}
            ),
            "not utf-8": await w.client.post(
                "/twilio/sms",
                data=b"Body=%ff&From=%fe",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            "raw bytes": await w.client.post(
                "/twilio/status",
                data=b"\x00\xff\xfe",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            "no From": await post_signed(w, "/twilio/sms", {"Body": "STOP", "MessageSid": "SM1"}),
            "no sid": await post_signed(w, "/twilio/sms", {"Body": "STOP", "From": NUMBER}),
            "long command id": await post_signed(
                w, f"/twilio/status?command_id={'c' * 300}", status_form()
            ),
        }
        statuses = {name: answer.status for name, answer in answers.items()}
        assert statuses == {
            "too large": 413,
            "too large unsubscribe": 413,
            "not a form": 415,
            "not utf-8": 400,
            "raw bytes": 400,
            "no From": 400,
            "no sid": 400,
            "long command id": 400,
        }
        assert w.outbox.consents == [] and w.outbox.results == []
        assert (await w.client.get("/healthz")).status == 200
        assert (await w.client.get("/readyz")).status == 200
        assert (await w.client.get("/metrics")).status == 404  # not on the public port
        metrics = await (await w.scraper.get("/metrics")).text()
        assert (
            'cartpulse_webhook_requests_total{outcome="too_large",route="sms_inbound"} 1.0'
            in metrics
        )


def test_the_signed_url_is_the_public_one_behind_a_proxy() -> None:
    request = test_utils.make_mocked_request(
        "POST", "/twilio/status?command_id=a%2Fb&x=1", headers={"Host": "10.0.0.5:8080"}
    )
    assert signed_url(request, None) == "http://10.0.0.5:8080/twilio/status?command_id=a%2Fb&x=1"
    assert (
        signed_url(request, "https://hooks.example.com/prefix/")
        == "https://hooks.example.com/prefix/twilio/status?command_id=a%2Fb&x=1"
    )


# --- replays, links and logs under hostile input -----------------------------------------


async def test_a_replay_under_a_new_message_sid_is_recorded_once() -> None:
    async with world() as w:
        first = await post_signed(w, "/twilio/sms", inbound_form("STOP", sid="SM" + "1" * 32))
        # the same message re-split by a replaying proxy: a new SID, the same sender and text
        replay = await post_signed(w, "/twilio/sms", inbound_form("STOP", sid="SM" + "2" * 32))
        assert first.status == replay.status == 200
        assert await first.text() == await replay.text()
        assert len(w.outbox.consents) == 1
        assert (
            w.metric(
                "cartpulse_webhook_requests_total", {"route": "sms_inbound", "outcome": "duplicate"}
            )
            == 1
        )
        # another number sending the same text is its own message
        other = inbound_form("STOP", sender="+14155550199", sid="SM" + "3" * 32)
        assert (await post_signed(w, "/twilio/sms", other)).status == 200
        assert len(w.outbox.consents) == 2


async def test_the_same_text_after_a_change_of_mind_is_recorded_again() -> None:
    async with world() as w:
        for i, body in enumerate(["STOP", "START", "STOP", "STOP"]):
            sid = f"SM{i:032d}"
            assert (await post_signed(w, "/twilio/sms", inbound_form(body, sid=sid))).status == 200
        # STOP, START, STOP recorded; the last STOP repeats a recorded state and text
        assert [r["status"] for _, r in w.outbox.consents] == [
            "opted_out",
            "opted_in",
            "opted_out",
        ]
        # an opt-in recorded by another way (not a keyword) makes the same STOP new again
        subject = address_subject(NUMBER)
        w.consents.consents[(subject, "sms")] = Consent("opted_in", 1_700_000_000_001, "web")
        again = inbound_form("STOP", sid="SM" + "9" * 32)
        assert (await post_signed(w, "/twilio/sms", again)).status == 200
        assert [r["status"] for _, r in w.outbox.consents][-1] == "opted_out"
        assert len(w.outbox.consents) == 4
        assert w.consents.consents[(subject, "sms")].status == "opted_out"


async def test_the_confirmation_page_posts_back_under_the_public_path_prefix() -> None:
    # a proxy publishes the service under /cartpulse and strips it before passing requests on
    async with world(public_url="https://hooks.example.com/cartpulse/") as w:
        path = unsubscribe_path()
        page = await w.client.get(path)
        assert page.status == 200
        assert f'action="/cartpulse{path}"' in await page.text()
    async with world() as w:  # no prefix: the path as requested
        assert f'action="{unsubscribe_path()}"' in await (await w.client.get(path)).text()


@pytest.mark.parametrize(
    ("customer", "channel"),
    [("", "email"), ("  ", "email"), ("cust-1", "fax"), ("cust-1", "")],
)
async def test_get_and_post_judge_an_unsubscribe_token_alike(customer: str, channel: str) -> None:
    async with world() as w:
        token = make_token(
            UNSUBSCRIBE_SECRET, UnsubscribeToken(customer, channel, "store-1", 1_800_000_000_000)
        )
        path = unsubscribe_url("/unsubscribe", token)
        page = await w.client.get(path)
        assert page.status == 400
        assert "<form" not in await page.text()  # no button that POST would then refuse
        posted = await w.client.post(path, data="List-Unsubscribe=One-Click")
        assert posted.status == 400
        assert w.outbox.consents == [] and w.consents.consents == {}


async def test_request_fields_in_log_lines_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    huge_number = "+" + "1" * 10_000
    async with world(max_body=64 * 1024) as w:
        stop = inbound_form("STOP", sender=huge_number)
        assert (await post_signed(w, "/twilio/sms", stop)).status == 200
        long_body = {**inbound_form("x" * 3000, sid="SM" + "4" * 32), "OptOutType": "STOP"}
        assert (await post_signed(w, "/twilio/sms", long_body)).status == 200
        w.outbox.down = True
        status = status_form(sid="SM" + "x" * 5000)
        assert (await post_signed(w, STATUS_PATH + "x" * 3000, status)).status in (400, 503)
    assert caplog.records, "the requests were logged"
    for record in caplog.records:
        assert len(record.getMessage()) < 600, record.getMessage()[:200]
    assert any("…" in r.getMessage() for r in caplog.records)  # truncated, with a marker
