"""``python -m kitecore.cli``: the ``kite`` command."""

import sys

from kitecore.cli import main

sys.exit(main())
