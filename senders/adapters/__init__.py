"""One adapter per provider or store, behind the senders' ports: Twilio, SMTP, and the
Redis ledger, rate limits, consent mirror, phone index, short links and heartbeat."""
