"""Shared plumbing for the thin command-line entry points under ``preprocess/``, ``scripts/`` and ``eval/``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from .errors import UniMuMERError

EXIT_USAGE = 2


def run_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)`` and map errors to exit codes.

    - :class:`~unimumer.errors.UniMuMERError` (bad input) → ``error: <message>`` on stderr, exit code 2;
    - ``KeyboardInterrupt`` → ``interrupted`` on stderr, exit code 130, or 128 + signal for SIGTERM / SIGHUP
      turned into :class:`~unimumer.inference.lifecycle.Terminated` (resumable jobs keep their progress files);
    - otherwise the return value of ``main`` (``None`` → 0).

    Returns the exit code; the CLI scripts call ``sys.exit(run_main(main))``.
    """
    try:
        code = main(argv)
    except UniMuMERError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc})" if str(exc) else "interrupted", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    return 0 if code is None else int(code)


def emit(text: str) -> None:
    """Write ``text`` to stdout as UTF-8 bytes (the report holds ``≤``), whatever the locale."""
    sys.stdout.flush()
    buf = getattr(sys.stdout, "buffer", None)
    if buf is not None:
        buf.write(text.encode("utf-8"))
        buf.flush()
    else:
        sys.stdout.write(text)
