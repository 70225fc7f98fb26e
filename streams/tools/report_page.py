"""The page ``streams.tools.report_html`` fills in: one self-contained HTML file (Jinja2, escaped).

Every chart sits beside a table of the numbers it draws: the chart is one image to assistive
technology (``role="img"`` with a one-line summary), the table is what a screen reader reads.
"""

from typing import Final

PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="cartpulse report">
<title>cartpulse report{% if stores %} · {{ stores|join(", ") }}{% endif %}\
{% if span %} · {{ span[0] }} to {{ span[1] }}{% endif %}</title>
<style>
  :root { --ink: #1f2937; --muted: #475569; --rule: #e2e8f0; --accent: #0f766e; }
  * { box-sizing: border-box; }
  body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto,
         "Liberation Sans", sans-serif; color: var(--ink); background: #f8fafc; line-height: 1.45; }
  header, main, footer { max-width: 1320px; margin: 0 auto; padding: 0 24px; }
  header { padding-top: 24px; }
  h1 { font-size: 1.6rem; margin: 0 0 4px; }
  h2 { font-size: 1.3rem; margin: 0; }
  h2 small { font-weight: 400; color: var(--muted); font-size: 0.95rem; }
  .meta { color: var(--muted); margin: 2px 0 12px; }
  nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 8px 18px; }
  a { color: var(--accent); }
  section.flow { background: #fff; border: 1px solid var(--rule); border-radius: 10px;
                 padding: 18px 20px; margin: 18px 0; }
  .pair { display: grid; grid-template-columns: minmax(0, 3fr) minmax(20rem, 2fr);
          gap: 20px; align-items: start; border-top: 1px solid var(--rule); padding: 12px 0; }
  @media (max-width: 960px) { .pair { grid-template-columns: 1fr; } }
  figure { margin: 0; min-width: 0; }
  .none { color: var(--muted); margin: 12px 0; }
  .table { overflow-x: auto; }
  .scroll { max-height: 300px; overflow-y: auto; }
  table { border-collapse: collapse; width: 100%; font-size: 0.86rem;
          font-variant-numeric: tabular-nums; }
  caption { text-align: left; font-weight: 600; padding: 4px 0 6px; }
  th, td { padding: 4px 6px; border-bottom: 1px solid var(--rule); text-align: right;
           white-space: nowrap; }
  th:first-child, td:first-child, th.text, td.text { text-align: left; }
  thead th { color: var(--muted); font-weight: 600; position: sticky; top: 0; background: #fff; }
  footer { color: var(--muted); font-size: 0.88rem; padding-bottom: 32px; }
</style>
<script>{{ plotly_js }}</script>
</head>
<body>
<header>
<h1>Recovery report</h1>
<p class="meta">
{% if stores %}Store{{ "s" if stores|length > 1 }}: {{ stores|join(", ") }} · {% endif %}
{% if span %}records from {{ span[0] }} to {{ span[1] }} (UTC){% else %}no dated records{% endif %}
 · generated {{ generated }} UTC by cartpulse report</p>
{% if views %}
<nav aria-label="Flows"><ul>
{% for v in views %}
<li><a href="#flow-{{ v.number }}">{{ v.flow }}</a>
{%- if v.trigger %} ({{ v.trigger }}){% endif %}</li>
{% endfor %}
</ul></nav>
{% endif %}
</header>
<main>
{% if not views %}
<p class="none">No decisions or recoveries were read: nothing to report.</p>
{% endif %}
{% for v in views %}
{% set c = charts[v.number] %}
{% set say = summaries(v) %}
<section class="flow" id="flow-{{ v.number }}" aria-labelledby="flow-{{ v.number }}-title">
<h2 id="flow-{{ v.number }}-title">Flow {{ v.flow }}
<small>{% if v.trigger %}on {{ v.trigger }} abandonments{% else %}trigger unknown{% endif %}
</small></h2>
<p class="meta">
{% if v.stores %}{{ v.stores|join(", ") }} · {% endif %}
{% if v.span %}{{ v.span[0] }} to {{ v.span[1] }} (UTC) · {% endif %}
{{ v.branches|length }} branch{{ "es" if v.branches|length != 1 }}
{%- for row in v.branches %}{{ ":" if loop.first else "," }} {{ row.variant }}{% endfor %}</p>

<div class="pair">
<figure role="img" aria-label="{{ say.funnel }}">{{ c.funnel }}</figure>
<div class="table">
<table>
<caption>Funnel of {{ v.flow }}, all branches</caption>
<thead><tr><th scope="col">stage</th><th scope="col">count</th><th scope="col">share</th>
</tr></thead>
<tbody>
{% for label, n, note in funnel_rows(v) %}
<tr><th scope="row">{{ label }}</th><td>{{ n|num }}</td><td>{{ note }}</td></tr>
{% endfor %}
</tbody>
</table>
</div>
</div>

<div class="pair">
{% if c.steps %}
<figure role="img" aria-label="{{ say.steps }}">{{ c.steps }}</figure>
{% else %}
<p class="none">No message was sent in this flow.</p>
{% endif %}
<div class="table">
<table>
<caption>By branch and step (step 1 is the flow's first)</caption>
<thead><tr><th scope="col">branch</th><th scope="col" class="text">step</th>
<th scope="col">sent</th><th scope="col">clicked</th>
<th scope="col">recovered</th><th scope="col">revenue{{ currency(v) }}</th></tr></thead>
<tbody>
{% for variant, step, s in v.steps %}
<tr><td>{{ variant }}</td><td class="text">{{ step + 1 }} {{ s.channel }}</td>
<td>{{ s.sent|num }}</td><td>{{ s.clicked|num }}</td><td>{{ s.recovered|num }}</td>
<td>{{ s.revenue|money }}</td></tr>
{% endfor %}
{% for row in v.branches if row.variant == HOLDOUT %}
<tr><td>{{ row.variant }}</td>
<td colspan="5" class="text">{{ row.arm.journeys|num }} journeys, no message by design</td></tr>
{% endfor %}
</tbody>
</table>
</div>
</div>

<div class="pair">
{% if c.revenue %}
<figure role="img" aria-label="{{ say.revenue }}">{{ c.revenue }}</figure>
{% else %}
<p class="none">No order was recovered in this flow.</p>
{% endif %}
<div class="table scroll" tabindex="0" role="region" aria-label="Revenue per day, {{ v.flow }}">
<table>
<caption>Recovered revenue per day (UTC)</caption>
<thead><tr><th scope="col">day</th><th scope="col" class="text">branch</th>
<th scope="col">orders</th><th scope="col">revenue{{ currency(v) }}</th></tr></thead>
<tbody>
{% for day, variant, s in v.days %}
<tr><td>{{ day }}</td><td class="text">{{ variant }}</td><td>{{ s.recovered|num }}</td>
<td>{{ s.revenue|money }}</td></tr>
{% endfor %}
<tr><th scope="row">all days</th><td></td><td>{{ total_orders(v)|num }}</td>
<td>{{ total_revenue(v)|money }}</td></tr>
</tbody>
</table>
</div>
</div>

<div class="pair">
{% if c.lift %}
<figure role="img" aria-label="{{ say.lift }}">{{ c.lift }}</figure>
{% else %}
<p class="none">No lift: the flow has no holdout journeys, or no other branch, to compare.</p>
{% endif %}
<div class="table">
<table>
<caption>Conversion and lift against the holdout</caption>
<thead><tr><th scope="col">branch</th><th scope="col">journeys</th>
<th scope="col">converted</th><th scope="col">rate</th><th scope="col">lift (pts)</th>
<th scope="col">95 % interval</th></tr></thead>
<tbody>
{% for row in v.branches %}
<tr><td>{{ row.variant }}</td><td>{{ row.arm.journeys|num }}</td>
<td>{{ row.arm.conversions|num }}</td><td>{{ row.arm.conversion_rate|pct }}</td>
{% if row.lift is not none and row.lift_ci %}
<td>{{ row.lift|points("") }}</td>
<td>{{ row.lift_ci[0]|points("") }} to {{ row.lift_ci[1]|points("") }}</td></tr>
{% else %}
<td>&ndash;</td><td>&ndash;</td></tr>
{% endif %}
{% endfor %}
</tbody>
</table>
</div>
</div>
</section>
{% endfor %}
</main>
<footer>
<p><strong>Reading it.</strong> A branch is a flow's variant; the holdout gets no message and
measures what would have happened anyway. The funnel counts the abandonments the flow started
or ignored, then journeys: those entered, those sent at least one message, those with a clicked
link, those with an order credited to one of their messages (an order is credited to the last
message sent before it). The steps count messages: each clicked message once, however often its
links were clicked. Lift is a branch's conversion rate (an order within the conversion window,
with or without a message) minus the holdout's, in percentage points, with a 95 % interval
(normal approximation); an interval that spans 0 is no evidence of an effect. Days are UTC.</p>
{% for trigger, n in trigger_ignores.items() %}
<p>{{ n|num }} {{ trigger }} abandonments were ignored before any flow was chosen
(an anonymous shopper, no flow for the trigger).</p>
{% endfor %}
{% if unattributed_clicks %}
<p>{{ unattributed_clicks|num }} clicks named a message that no decision read here sent:
left out.</p>
{% endif %}
{% if unreadable %}
<p>{{ unreadable|num }} records were not JSON objects: skipped.</p>
{% endif %}
</footer>
</body>
</html>
"""
