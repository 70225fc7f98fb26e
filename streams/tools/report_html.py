"""``cartpulse report --html``: the report as one page that opens from disk with no network.

Per flow: the funnel (abandonments, then journeys entered → sent a message → clicked a link →
with an order recovered), each branch's steps in messages, recovered revenue per UTC day and the
lift against the holdout with its 95 % interval, each chart drawn by plotly.js (inlined once in
the page, so nothing is fetched) with a plain table of the same numbers beside it for screen
readers and for copying. Pure: ``render_html`` takes the accumulated ``Report``, returns the page.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from jinja2 import Environment
from markupsafe import Markup

# plotly ships no type hints: its figures are built here and only their HTML leaves the module
from plotly import graph_objects as go  # type: ignore[import-untyped]
from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

from streams.core.eligibility import HOLDOUT
from streams.tools.report import DayStats, Report, Row, StepStats, utc_day
from streams.tools.report_page import PAGE

if TYPE_CHECKING:
    from streams.core.policy import Policy

# The funnel counts abandonments, then journeys: entered, sent a message, with a clicked link,
# with an order credited to one of their messages.
STAGES: Final = (
    "abandonments", "journeys entered", "sent a message", "clicked a link", "order recovered",
)  # fmt: skip
STAGE_COLOURS: Final = ("#94a3b8", "#0f766e", "#0e7490", "#2563eb", "#b45309")
BRANCH_COLOURS: Final = ("#0f766e", "#2563eb", "#b45309", "#7c3aed", "#be123c")
DASH: Final = "\u2013"  # an en dash: no value
HOLDOUT_COLOUR: Final = "#64748b"
FONT: Final = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Liberation Sans', sans-serif"
PLOT_CONFIG: Final = {"displayModeBar": False, "responsive": True}


@dataclass(frozen=True, slots=True)
class Names:
    """What the policy knows and the records do not: each flow's trigger, each store's name."""

    triggers: Mapping[str, str] = field(default_factory=dict)
    stores: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, policy: Policy) -> Names:
        return cls(
            {name: flow.trigger for name, flow in policy.flows.items()},
            {store_id: store.brand for store_id, store in policy.stores.items()},
        )


@dataclass(frozen=True, slots=True)
class FlowView:
    """One flow's numbers, ready to draw."""

    number: int
    flow: str
    trigger: str | None
    stores: tuple[str, ...]
    currency: str  # "" when unknown or mixed
    span: tuple[str, str] | None  # first and last UTC day
    funnel: tuple[tuple[str, int], ...]
    branches: tuple[Row, ...]
    steps: tuple[tuple[str, int, StepStats], ...]  # variant, step index, numbers
    days: tuple[tuple[str, str, DayStats], ...]  # UTC day, variant, numbers

    @property
    def lifts(self) -> tuple[Row, ...]:
        return tuple(row for row in self.branches if row.lift is not None)


def flow_views(report: Report, names: Names) -> list[FlowView]:
    """Every flow the records name, by trigger and then name."""
    rows = report.rows()
    flows = flows_of(report, names)
    trigger = {flow: names.triggers.get(flow) or report.triggers.get(flow) for flow in flows}
    views = []
    for number, flow in enumerate(sorted(flows, key=lambda f: (trigger[f] or "~", f)), start=1):
        branches = tuple(row for row in rows if row.flow == flow)
        arms = [row.arm for row in branches]
        currencies = report.currencies.get(flow, Counter[str]())
        span = report.spans.get(flow)
        counts = (
            report.abandonments.get(flow, 0), sum(a.journeys for a in arms),
            sum(a.journeys_sent for a in arms), sum(a.journeys_clicked for a in arms),
            sum(a.journeys_recovered for a in arms),
        )  # fmt: skip
        views.append(
            FlowView(
                number=number,
                flow=flow,
                trigger=trigger[flow],
                stores=tuple(
                    names.stores.get(s, s) for s in sorted(report.stores.get(flow, Counter[str]()))
                ),
                currency=next(iter(currencies)) if len(currencies) == 1 else "",
                span=None if span is None else (utc_day(span[0]), utc_day(span[1])),
                funnel=tuple(zip(STAGES, counts, strict=True)),
                branches=branches,
                steps=tuple(
                    (variant, step, stats)
                    for (f, variant, step), stats in sorted(report.steps.items())
                    if f == flow
                ),
                days=tuple(
                    (day, variant, stats)
                    for (f, variant, day), stats in sorted(report.days.items(), key=_by_day)
                    if f == flow
                ),
            )
        )
    return views


def flows_of(report: Report, names: Names) -> set[str]:
    """The flows the records name. An abandonment ignored before any flow was chosen (an
    anonymous shopper's) names its trigger instead: that name is no flow unless one has it."""
    known = set(names.triggers) | {flow for flow, _ in report.arms}
    triggers = set(names.triggers.values()) | set(report.triggers.values())
    return known | {flow for flow in report.abandonments if flow not in triggers}


def trigger_ignores(report: Report, names: Names) -> dict[str, int]:
    """Abandonments ignored before any flow was chosen, per trigger."""
    flows = flows_of(report, names)
    return {name: n for name, n in sorted(report.abandonments.items()) if name not in flows}


def _by_day(item: tuple[tuple[str, str, str], DayStats]) -> tuple[str, str]:
    (_, variant, day), _ = item
    return day, variant


def funnel_rows(view: FlowView) -> list[tuple[str, int, str]]:
    """Each funnel stage with its count and what it is a share of."""
    (_, abandoned), (_, entered), (_, sent), (_, clicked), (_, recovered) = view.funnel

    def share(part: int, whole: int, of: str) -> str:
        return f"{part / whole:.1%} of {of}" if whole else DASH

    return [
        (STAGES[0], abandoned, ""),
        (STAGES[1], entered, share(entered, abandoned, "abandonments")),
        (STAGES[2], sent, share(sent, entered, "entered")),
        (STAGES[3], clicked, share(clicked, sent, "sent")),
        (STAGES[4], recovered, share(recovered, entered, "entered")),
    ]


def summaries(view: FlowView) -> dict[str, str]:
    """One sentence per chart: what assistive technology reads for the picture."""
    stages = ", ".join(f"{n:,} {label}" for label, n in view.funnel)
    lifts = "; ".join(
        f"{row.variant} {points(row.lift)} (95 % interval {points(row.lift_ci[0])} to "
        f"{points(row.lift_ci[1])})"
        for row in view.lifts
        if row.lift is not None and row.lift_ci is not None
    )
    days = f"{view.days[0][0]} to {view.days[-1][0]}" if view.days else "no day"
    return {
        "funnel": f"Funnel of flow {view.flow}: {stages}.",
        "steps": f"Messages sent and clicked, and orders recovered, per branch and step of flow "
        f"{view.flow}; the table beside gives the numbers.",
        "revenue": f"Recovered revenue per day of flow {view.flow}, {days}: "
        f"{money(total_revenue(view), view.currency)} in all.",
        "lift": f"Lift in conversion of flow {view.flow} against its holdout: {lifts}.",
    }


def total_revenue(view: FlowView) -> Decimal:
    return sum((row.arm.revenue for row in view.branches), Decimal())


def total_orders(view: FlowView) -> int:
    return sum(row.arm.recovered for row in view.branches)


def currency(view: FlowView) -> str:
    """`` (USD)`` after a money column's name when the flow's orders share one currency."""
    return f" ({view.currency})" if view.currency else ""


def money(amount: Decimal, currency: str = "") -> str:
    text = f"{amount:,.2f}"
    return f"{text} {currency}" if currency else text


def points(value: float, unit: str = " pts") -> str:
    """A difference of two rates in percentage points, signed: ``+4.2 pts``."""
    return f"{value * 100:+.1f}{unit}".replace("-", "\u2212")  # a minus sign, not a hyphen


def branch_colour(variant: str, variants: Sequence[str]) -> str:
    if variant == HOLDOUT:
        return HOLDOUT_COLOUR
    treated = [v for v in variants if v != HOLDOUT]
    return BRANCH_COLOURS[treated.index(variant) % len(BRANCH_COLOURS)]


def _layout(title: str, height: int, **more: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        "template": "plotly_white",
        "font": {"family": FONT, "size": 12, "color": "#1f2937"},
        "height": height,
        "margin": {"l": 10, "r": 20, "t": 44, "b": 40},
        "legend": {"orientation": "h", "y": -0.18, "x": 0},
        **more,
    }


def _html(figure: Any, div_id: str) -> Markup:
    # The page inlines plotly.js once in its head: each chart only calls it.
    html = figure.to_html(
        full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG
    )
    return Markup(html)  # noqa: S704 - plotly's own markup; every text in it is JSON-encoded


def funnel_chart(view: FlowView) -> Markup:
    labels, values = zip(*view.funnel, strict=True)
    figure = go.Figure(
        go.Funnel(
            y=list(labels), x=list(values), textinfo="value", textposition="inside",
            marker={"color": list(STAGE_COLOURS)},
            connector={"fillcolor": "#e2e8f0", "line": {"width": 0}},
            hovertemplate="%{y}: %{x:,}<extra></extra>",
        ),
        layout=_layout("Funnel, all branches", 300, yaxis={"automargin": True}),
    )  # fmt: skip
    return _html(figure, f"flow{view.number}-funnel")


def steps_chart(view: FlowView) -> Markup:
    variants = sorted({variant for variant, _, _ in view.steps})
    labels = [
        f"{variant}<br>step {step + 1} {stats.channel}" for variant, step, stats in view.steps
    ]
    bars = (("sent", "#0e7490"), ("clicked", "#2563eb"), ("recovered", "#b45309"))
    figure = go.Figure(
        [
            go.Bar(
                name=f"{'orders' if name == 'recovered' else 'messages'} {name}",
                x=labels, y=[getattr(stats, name) for _, _, stats in view.steps],
                marker_color=colour, text=[getattr(stats, name) for _, _, stats in view.steps],
                textposition="outside", cliponaxis=False,
            )
            for name, colour in bars
        ],
        layout=_layout(
            f"By branch and step ({len(variants)} branch{'es' if len(variants) != 1 else ''})",
            300, barmode="group", yaxis={"rangemode": "tozero"},
        ),
    )  # fmt: skip
    return _html(figure, f"flow{view.number}-steps")


def revenue_chart(view: FlowView) -> Markup:
    variants = sorted({variant for _, variant, _ in view.days})
    everyone = [row.variant for row in view.branches]
    figure = go.Figure(
        [
            go.Bar(
                name=variant,
                x=[day for day, v, _ in view.days if v == variant],
                y=[float(s.revenue) for _, v, s in view.days if v == variant],
                marker_color=branch_colour(variant, everyone),
                hovertemplate="%{x|%a %d %b}: %{y:,.2f}<extra>" + variant + "</extra>",
            )
            for variant in variants
        ],
        layout=_layout(
            f"Recovered revenue per day{f' ({view.currency})' if view.currency else ''}, UTC",
            300, barmode="stack", showlegend=len(variants) > 1,
            xaxis={"type": "date", "tickformat": "%d %b", "dtick": 86_400_000},
            yaxis={"rangemode": "tozero", "tickformat": ",.0f"},
        ),
    )  # fmt: skip
    return _html(figure, f"flow{view.number}-revenue")


def lift_chart(view: FlowView) -> Markup:
    rows = view.lifts
    everyone = [row.variant for row in view.branches]
    figure = go.Figure(
        [
            go.Scatter(
                x=[row.lift * 100], y=[row.variant], mode="markers+text", name=row.variant,
                text=[points(row.lift)], textposition="top center", cliponaxis=False,
                marker={"size": 12, "color": branch_colour(row.variant, everyone)},
                error_x={
                    "type": "data", "symmetric": False, "thickness": 2, "width": 8,
                    "array": [(row.lift_ci[1] - row.lift) * 100],
                    "arrayminus": [(row.lift - row.lift_ci[0]) * 100],
                },
                hovertemplate="%{y}: %{x:+.1f} pts<extra></extra>",
            )
            for row in rows
            if row.lift is not None and row.lift_ci is not None
        ],
        layout=_layout(
            "Lift in conversion against the holdout (95 % interval)", 130 + 70 * len(rows),
            showlegend=False, margin={"l": 10, "r": 20, "t": 64, "b": 40},
            xaxis={"title": {"text": "percentage points"}, "zeroline": False},
            yaxis={"automargin": True, "type": "category"},
            shapes=[{"type": "line", "xref": "x", "yref": "paper", "x0": 0, "x1": 0, "y0": 0,
                     "y1": 1, "line": {"color": "#475569", "dash": "dot", "width": 1}}],
        ),
    )  # fmt: skip
    return _html(figure, f"flow{view.number}-lift")


def render_html(report: Report, names: Names, generated_ms: int) -> str:
    """The whole report as one HTML page (about 5 MB: plotly.js is in it)."""
    views = flow_views(report, names)
    spans = [v.span for v in views if v.span]
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(money=money, points=points, pct=lambda x: f"{x:.1%}", num=lambda n: f"{n:,}")
    stores = sorted({store for v in views for store in v.stores})
    return env.from_string(PAGE).render(
        views=views,
        stores=stores,
        span=(min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None,
        generated=datetime.fromtimestamp(generated_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M"),
        unattributed_clicks=report.unattributed_clicks,
        unreadable=report.unreadable,
        charts={
            v.number: {
                "funnel": funnel_chart(v),
                "steps": steps_chart(v) if v.steps else None,
                "revenue": revenue_chart(v) if v.days else None,
                "lift": lift_chart(v) if v.lifts else None,
            }
            for v in views
        },
        funnel_rows=funnel_rows,
        summaries=summaries,
        total_revenue=total_revenue,
        total_orders=total_orders,
        currency=currency,
        trigger_ignores=trigger_ignores(report, names),
        plotly_js=Markup(get_plotlyjs()),  # noqa: S704 - the library's own bundled script
        HOLDOUT=HOLDOUT,
    )
