"""The worker shells around streams/core: decode, call the core, emit, persist, acknowledge,
count. Their ports are Protocols; tests/agents drives them through typed fakes."""
