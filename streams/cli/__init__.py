"""The ``cartpulse`` command: one parser (``main``), one module per group of subcommands.

The top of the tree: nothing imports it (the import contracts in .importlinter keep it so).
"""

from streams.cli.main import main

__all__ = ["main"]
