"""``python -m tripsearch.cli``: the ``tripsearch`` command."""

import sys

from .main import main

sys.exit(main())
