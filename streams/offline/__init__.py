"""Files in, the same cores as the worker, files out: ``cartpulse detect``, ``journeys``,
``import``, ``simulate``."""
