"""Records of cartpulse and their validation. No Faust, Kafka or Redis in here."""
