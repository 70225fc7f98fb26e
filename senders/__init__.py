"""cartpulse senders: SMS through Twilio and email through SMTP (docs/architecture.md)."""
