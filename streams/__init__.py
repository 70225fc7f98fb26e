"""cartpulse: abandoned-cart and browse-abandonment recovery on Kafka."""

__version__ = "0.1.0"
