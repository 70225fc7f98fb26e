"""The senders' pure decisions: what to do with a command, what a provider's answer means,
whether a provider or the consent mirror is healthy, which offsets may be committed."""
