"""A week of journey records for ``cartpulse report``: three flows on two triggers, holdouts,
clicks and recoveries on different days, as the journeys worker and the click webhook write them.

Every number follows from ``BRANCHES``, so a test can state what the report must say.
``python -m tests.support.report_sample docs/img/report.png`` writes the picture docs/report.md
shows: the cart flow's part of the page, drawn in headless Chromium.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from streams.tools.report import Report
from streams.tools.report_html import Names

DAY_MS: Final = 86_400_000
START_MS: Final = 1_780_272_000_000  # 2026-06-01T00:00:00Z
DAYS: Final = 7
NAMES: Final = Names(
    triggers={"cart": "cart", "cart_vip": "cart", "browse": "browse"},
    stores={"default": "Cartpulse Demo Store"},
)


@dataclass(frozen=True, slots=True)
class Branch:
    flow: str
    trigger: str
    variant: str
    journeys: int
    # per step: channel, and the journeys below which it is sent and clicked (a converted
    # journey is sent no step after its order)
    steps: tuple[tuple[str, int, int], ...]
    conversions: int
    recovered: int  # the first ``recovered`` converted journeys' orders are credited
    revenue: Decimal  # the first order's; each next one 7.25 more, in five steps

    def revenue_of(self, i: int) -> Decimal:
        return self.revenue + Decimal("7.25") * (i % 5)


BRANCHES: Final = (
    Branch("cart", "cart", "control", 120, (("sms", 120, 26), ("email", 96, 18), ("email", 80, 9)),
           30, 26, Decimal("54.90")),
    Branch("cart", "cart", "discount", 120, (("sms", 120, 31), ("email", 90, 22)),
           38, 33, Decimal("49.90")),
    Branch("cart", "cart", "holdout", 30, (), 5, 0, Decimal(0)),
    Branch("cart_vip", "cart", "control", 40, (("email", 40, 14), ("sms", 31, 9)),
           13, 11, Decimal("289.00")),
    Branch("cart_vip", "cart", "holdout", 10, (), 2, 0, Decimal(0)),
    Branch("browse", "browse", "control", 90, (("email", 90, 12),), 9, 7, Decimal("35.00")),
    Branch("browse", "browse", "holdout", 20, (), 2, 0, Decimal(0)),
)  # fmt: skip
IGNORED: Final = {"cart": 14, "cart_vip": 3, "browse": 6}  # reentry_cooldown, duplicate, ...
ANONYMOUS: Final = {"browse": 0, "cart": 5}  # ignored before any flow: named by the trigger


def at(ms: int) -> str:
    from streams.contract.events import format_ms

    return format_ms(ms)


def records() -> dict[str, list[dict[str, Any]]]:
    """The decisions, recoveries and engagement records of the week, in that order each."""
    decisions: list[dict[str, Any]] = []
    recoveries: list[dict[str, Any]] = []
    engagement: list[dict[str, Any]] = []
    for b in BRANCHES:
        for i in range(b.journeys):
            customer, journey = f"c-{b.flow}-{b.variant}-{i}", f"jr-{b.flow}-{b.variant}-{i}"
            started = START_MS + (i % DAYS) * DAY_MS + 9 * 3_600_000 + i * 61_000
            base = {"customer_id": customer, "journey_id": journey, "flow": b.flow,
                    "variant": b.variant, "abandonment_id": f"ab-{journey}"}  # fmt: skip
            decisions.append({**base, "at": at(started), "action": "started", "reason": b.trigger})
            # A journey whose shopper orders stops there: journey i orders after its step
            # i % steps (its later steps are never sent), and its order is credited to the last
            # message sent before it.
            converts = i < b.conversions
            last_step = i % max(len(b.steps), 1) if converts else len(b.steps) - 1
            last_sent = None
            for step, (channel, sent, clicked) in enumerate(b.steps):
                if step > last_step or i >= sent:
                    break
                command = f"cmd-{journey}-{step}"
                sent_ms = started + (step + 1) * 3_600_000
                last_sent = (command, channel, sent_ms)
                decisions.append({**base, "at": at(sent_ms), "action": "emitted",
                                  "reason": "sent_to_channel", "step": step, "channel": channel,
                                  "command_id": command})  # fmt: skip
                if i < clicked:
                    engagement.append({"event_id": f"ev-{command}", "type": "link_clicked",
                                       "customer_id": customer, "store_id": "default",
                                       "command_id": command, "channel": channel,
                                       "occurred_at": at(sent_ms + 600_000)})  # fmt: skip
            if converts:
                ordered = started + (last_step + 1) * 3_600_000 + DAY_MS // 2
                decisions.append({**base, "at": at(ordered), "action": "ended",
                                  "reason": "converted"})  # fmt: skip
                if i < b.recovered and last_sent is not None:
                    command, channel, _ = last_sent
                    recoveries.append({
                        "recovery_id": f"rc-{journey}", "customer_id": customer,
                        "order_id": f"o-{journey}", "occurred_at": at(ordered),
                        "revenue": str(b.revenue_of(i)), "currency": "USD",
                        "journey_id": journey, "abandonment_id": f"ab-{journey}",
                        "flow": b.flow, "variant": b.variant, "channel": channel,
                        "command_id": command, "store_id": "default",
                    })  # fmt: skip
    decisions.extend(
        {"at": at(START_MS + i * 3_600_000), "customer_id": f"c-ig-{i}", "action": "ignored",
         "reason": "reentry_cooldown", "flow": flow, "abandonment_id": f"ab-ig-{flow}-{i}"}
        for flow, n in IGNORED.items()
        for i in range(n)
    )  # fmt: skip
    decisions.extend(
        {"at": at(START_MS + i * 7_200_000), "customer_id": "", "action": "ignored",
         "reason": "anonymous", "flow": trigger, "abandonment_id": f"ab-anon-{trigger}-{i}"}
        for trigger, n in ANONYMOUS.items()
        for i in range(n)
    )  # fmt: skip
    # At-least-once delivery repeats a decision; a shopper clicks a link twice; a click names a
    # message from before the records; an email open is no click.
    decisions.append(decisions[1])
    engagement.append({**engagement[0], "event_id": "ev-again"})
    engagement.append({**engagement[0], "event_id": "ev-old", "command_id": "cmd-older"})
    engagement.append({**engagement[0], "event_id": "ev-open", "type": "email_opened"})
    return {"decisions": decisions, "recoveries": recoveries, "engagement": engagement}


def sample_report() -> Report:
    report = Report()
    sample = records()
    for record in sample["decisions"]:
        report.add_decision(record)
    for record in sample["recoveries"]:
        report.add_recovery(record)
    for record in sample["engagement"]:
        report.add_engagement(record)
    return report


def main(argv: list[str]) -> int:
    from streams.tools.report_html import render_html
    from tests.support.report_browser import open_report

    target = Path(argv[0]) if argv else Path("docs/img/report.png")
    page = target.with_suffix(".html")
    page.write_text(render_html(sample_report(), NAMES, START_MS + DAYS * DAY_MS), "utf-8")
    try:
        with open_report(page) as shown:  # the cart flow: three branches, four steps' worth
            shown.page.locator("#flow-2").screenshot(path=str(target))
    finally:
        page.unlink()
    print(target)  # noqa: T201 - the command reports what it wrote
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
