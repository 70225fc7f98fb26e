"""``cartpulse collect``: storefront events over HTTP, onto the clickstream and cart topics.

``auth`` (who is sending), ``batch`` (what they sent) and ``cors`` (which browsers may send) are
pure; ``outbox`` talks to Kafka, ``routes`` to aiohttp, and ``service`` wires them
(docs/collector.md).
"""
