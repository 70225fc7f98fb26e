"""``cartpulse webhooks``: inbound SMS keywords, Twilio status callbacks, one-click unsubscribe
and click-tracking redirects. Pure parts (forms, signature, keywords, tokens) sit
beside the handlers that use them (``twilio``, ``links``), the aiohttp routes and the wiring."""
