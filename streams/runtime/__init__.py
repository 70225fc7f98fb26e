"""The runtime floor every process stands on: settings, the metrics catalogue, the faces of
Kafka and HTTP, logging, the policy file."""
