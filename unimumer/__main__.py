"""``python -m unimumer <command>``: the same as the ``unimumer`` console script."""

import sys

from .commands.main import main

sys.exit(main())
