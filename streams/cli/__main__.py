"""``python -m streams.cli``: the ``cartpulse`` command."""

import sys

from streams.cli.main import main

sys.exit(main())
