"""The sampling child of ``preprocess/build_error_corpus.py``: ``python -m unimumer.commands.sample_child FLAGS``.

One fold's held-out images, N candidates each, one engine (or a Ray cluster's engine actors); the flags are made
by :func:`unimumer.edl.corpus.stage_sample` (parser: :func:`unimumer.commands.error_corpus.sample_parser`). Prints
the counts as JSON; exit 0, 1 when a Ray run failed, 2 on bad input. Not meant to be run by hand.
"""

import sys

from ..cli import run_main
from .error_corpus import sample_main

if __name__ == "__main__":
    sys.exit(run_main(sample_main))
