"""``cartpulse report --html``: what the page counts, that it is one file needing no network,
and that headless Chromium, offline, draws every chart.

The records are a week of three flows on two triggers (tests/support/report_sample.py). The
browser test runs without Chromium only outside CI, where it is skipped.
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from streams.cli.main import main
from streams.tools.report import Report
from streams.tools.report_html import Names, flow_views, render_html, trigger_ignores
from tests.support.report_browser import CHARTS, open_report
from tests.support.report_sample import DAY_MS, DAYS, NAMES, START_MS, records, sample_report

GENERATED = START_MS + DAYS * DAY_MS


def _markup(html: str) -> str:
    """The page without its scripts' bodies (plotly.js, the charts' data)."""
    return re.sub(r"<script>.*?</script>", "<script></script>", html, flags=re.DOTALL)


def test_the_funnel_counts_journeys_per_flow() -> None:
    views = {view.flow: view for view in flow_views(sample_report(), NAMES)}
    assert list(views) == ["browse", "cart", "cart_vip"]  # by trigger, then by name
    # cart: 270 journeys started, 14 abandonments ignored (re-entry) and 5 anonymous shoppers'
    # (named by the trigger, which is also this flow's name); the treated 240 were all sent
    # their first step; 26 + 31 clicked; 26 + 33 orders credited, one per journey.
    assert dict(views["cart"].funnel) == {
        "abandonments": 289, "journeys entered": 270, "sent a message": 240,
        "clicked a link": 57, "order recovered": 59,
    }  # fmt: skip
    assert dict(views["cart_vip"].funnel) == {
        "abandonments": 53, "journeys entered": 50, "sent a message": 40,
        "clicked a link": 14, "order recovered": 11,
    }  # fmt: skip
    assert [v.trigger for v in views.values()] == ["browse", "cart", "cart"]
    assert all(
        v.stores == ("Cartpulse Demo Store",) and v.currency == "USD" for v in views.values()
    )
    assert views["cart"].span == ("2026-06-01", "2026-06-08")


def test_steps_count_messages_as_the_records_say() -> None:
    sample = records()
    decisions = list({orjson.dumps(d): d for d in sample["decisions"]}.values())  # no repeats
    emitted = [d for d in decisions if d["action"] == "emitted"]
    step_of = {d["command_id"]: (d["flow"], d["variant"], d["step"]) for d in emitted}
    clicked = {e["command_id"] for e in sample["engagement"] if e["type"] == "link_clicked"}
    expected = {
        key: (sent, Counter(step_of[c] for c in clicked if c in step_of)[key],
              Counter(step_of[r["command_id"]] for r in sample["recoveries"])[key])
        for key, sent in Counter(step_of.values()).items()
    }  # fmt: skip
    report = sample_report()
    got = {key: (s.sent, s.clicked, s.recovered) for key, s in report.steps.items()}
    assert got == expected
    # cart/control: 30 of 120 order, journey i after its step i % 3 (no later step is sent).
    assert got[("cart", "control", 0)] == (120, 26, 9)
    assert got[("cart", "control", 1)] == (86, 12, 9)
    assert got[("cart", "control", 2)] == (60, 3, 8)
    assert report.steps[("cart_vip", "control", 1)].channel == "sms"
    assert report.unattributed_clicks == 1  # the click on a message from before the records


def test_revenue_per_day_adds_up_to_the_recoveries() -> None:
    sample, report = records(), sample_report()
    for view in flow_views(report, NAMES):
        orders = [r for r in sample["recoveries"] if r["flow"] == view.flow]
        assert sum(s.recovered for _, _, s in view.days) == len(orders)
        assert sum(s.revenue for _, _, s in view.days) == sum(Decimal(r["revenue"]) for r in orders)
        days = [day for day, _, _ in view.days]
        assert days == sorted(days) and "2026-06-01" <= days[0] <= days[-1] <= "2026-06-08"
    cart = {(day, v): s.revenue for day, v, s in flow_views(report, NAMES)[1].days}
    assert cart[("2026-06-01", "discount")] == Decimal("322.00")  # 5 orders, 49.90 + 7.25 * i


def test_lift_and_its_interval_per_treated_branch() -> None:
    views = {view.flow: view for view in flow_views(sample_report(), NAMES)}
    lifts = {row.variant: row for row in views["cart"].lifts}
    assert set(lifts) == {"control", "discount"}  # the holdout has none
    assert lifts["control"].lift == pytest.approx(30 / 120 - 5 / 30)
    discount = lifts["discount"].lift
    assert discount == pytest.approx(38 / 120 - 5 / 30)
    low, high = lifts["discount"].lift_ci or (0.0, 0.0)
    assert low < discount < high and low < 0  # +15 pts, yet 30 holdout journeys: not conclusive


def test_the_page_is_one_file_that_fetches_nothing_and_says_what_it_shows() -> None:
    html = render_html(sample_report(), NAMES, GENERATED)
    markup = _markup(html)
    assert re.search(r"<script[^>]*\bsrc=", html) is None
    assert "<link" not in markup and "http" not in markup  # no stylesheet, font or image URL
    assert html.count("<script>") == 1 + 12  # plotly.js once, then one per chart
    assert (
        "<title>cartpulse report · Cartpulse Demo Store · 2026-06-01 to 2026-06-08</title>"
        in markup
    )
    for flow in ("browse", "cart", "cart_vip"):
        assert f">Flow {flow}\n" in markup
    assert markup.count("<table>") == 12 and markup.count("<caption>") == 12
    assert markup.count('role="img"') == 12
    assert "Lift in conversion of flow cart against its holdout: control +8.3 pts" in markup
    assert "<td>+15.0</td>" in markup  # discount's lift in the cart table
    assert "1 clicks named a message that no decision read here sent" in markup


def test_names_from_the_records_are_escaped() -> None:
    report = Report()
    report.add_decision({"journey_id": "j1", "action": "started", "reason": "cart",
                         "flow": "<img src=x onerror=alert(1)>", "variant": "control"})  # fmt: skip
    markup = _markup(render_html(report, Names(), GENERATED))
    assert "<img" not in markup and "&lt;img src=x onerror=alert(1)&gt;" in markup


def test_abandonments_ignored_before_any_flow_belong_to_their_trigger() -> None:
    report = Report()
    report.add_decision({"journey_id": "j1", "action": "started", "reason": "cart",
                         "flow": "cart_default", "variant": "control"})  # fmt: skip
    for i in range(2):
        report.add_decision({"action": "ignored", "reason": "anonymous", "flow": "cart",
                             "abandonment_id": f"ab-{i}"})  # fmt: skip
    names = Names(triggers={"cart_default": "cart"})
    assert [view.flow for view in flow_views(report, names)] == ["cart_default"]
    assert trigger_ignores(report, names) == {"cart": 2}
    markup = _markup(render_html(report, names, GENERATED))
    assert "2 cart abandonments were ignored before any flow was chosen" in markup
    assert "No lift: the flow has no holdout journeys" in markup  # and so no lift chart
    assert "No order was recovered in this flow." in markup
    assert markup.count('class="plotly-graph-div"') == 1  # the funnel alone


def test_an_empty_report_is_a_page_that_says_so() -> None:
    markup = _markup(render_html(Report(), Names(), GENERATED))
    assert "nothing to report" in markup and "no dated records" in markup


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def test_the_command_reads_engagement_and_writes_the_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = records()
    out = tmp_path / "report.html"
    code = main([
        "report", "--json", "--html", str(out),
        "--decisions", str(_jsonl(tmp_path / "d.jsonl", sample["decisions"])),
        "--recoveries", str(_jsonl(tmp_path / "r.jsonl", sample["recoveries"])),
        "--engagement", str(_jsonl(tmp_path / "e.jsonl", sample["engagement"])),
    ])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    rows = {(r["flow"], r["variant"]): r for r in orjson.loads(captured.out)}
    control = rows[("cart", "control")]
    assert (control["messages"], control["clicked"], control["journeys_clicked"]) == (266, 41, 26)
    assert f"wrote {out}" in captured.err
    assert "1 clicks named a message no decision read here sent" in captured.err
    markup = _markup(out.read_text("utf-8"))
    # The default policy knows cart and browse; cart_vip's trigger comes from its journeys.
    assert ">Flow cart_vip\n<small>on cart abandonments" in markup
    assert not list(tmp_path.glob(".*.partial"))


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.usefixtures("chromium_binary")
def test_every_chart_draws_in_chromium_with_no_network(tmp_path: Path) -> None:
    report = sample_report()
    page = tmp_path / "report.html"
    page.write_text(render_html(report, NAMES, GENERATED), "utf-8")
    shot = tmp_path / "report.png"
    with open_report(page) as shown:
        charts = {chart["id"]: chart for chart in shown.page.evaluate(CHARTS)}
        shown.page.screenshot(path=str(shot), full_page=True)
        headings = shown.page.locator("h2").all_inner_texts()
    assert shown.requests == []  # plotly.js is inlined; nothing else is asked for
    assert shown.errors == []
    assert [h.split("\n")[0] for h in headings] == [
        "Flow browse on browse abandonments", "Flow cart on cart abandonments",
        "Flow cart_vip on cart abandonments",
    ]  # fmt: skip
    views = flow_views(report, NAMES)
    expected = {}
    for v in views:
        expected[f"flow{v.number}-funnel"] = {"bars": 5, "markers": 0, "errorbars": 0}
        expected[f"flow{v.number}-steps"] = {"bars": 3 * len(v.steps), "markers": 0, "errorbars": 0}
        expected[f"flow{v.number}-revenue"] = {"bars": len(v.days), "markers": 0, "errorbars": 0}
        lifts = len(v.lifts)
        expected[f"flow{v.number}-lift"] = {"bars": 0, "markers": lifts, "errorbars": lifts}
    assert set(charts) == set(expected)
    for chart_id, chart in charts.items():
        drawn = {key: chart[key] for key in ("bars", "markers", "errorbars")}
        assert drawn == expected[chart_id], chart_id
        assert chart["svgs"] >= 1 and chart["title"], chart_id
        assert chart["width"] > 400 and chart["height"] >= 150, chart_id
    width, height = _png_size(shot)
    assert width == 1320 and height > 3000  # three flows, four charts each, laid out
