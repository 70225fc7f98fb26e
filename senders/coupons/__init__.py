"""Coupons the checkout honours (docs/compliance.md, Coupons).

``ports.py`` holds the Protocols; ``gate.py`` (the senders' "is this code registered?") and
the request builders of the providers are pure; ``topic.py``, ``webhook.py`` and ``shopify.py``
each talk to one provider; ``store.py`` keeps each code's state in Redis; ``registrar.py``
decides what a ``coupons`` or ``orders`` record does, and ``service.py`` only wires it to Kafka
(``cartpulse coupons``).
"""
