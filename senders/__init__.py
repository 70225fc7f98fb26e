"""cartpulse senders: SMS through Twilio and email through SMTP (BRIEF §5)."""
