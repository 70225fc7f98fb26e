"""The pure cores: detection, journeys, eligibility, policy, messages. They take state, an event
and the time and return decisions; no Faust, Kafka, Redis, sockets or clock reads (the import
contracts in .importlinter keep it so)."""
