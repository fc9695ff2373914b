"""Parser set-up shared by the commands: the parser each command starts from, and options used by several."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

_invoked_as: str | None = None


@contextlib.contextmanager
def invoked_as(prog: str) -> Iterator[None]:
    """Within the block, :func:`command_parser` names the command ``prog`` (``unimumer eval``) in usage lines
    instead of its official script name."""
    global _invoked_as
    previous, _invoked_as = _invoked_as, prog
    try:
        yield
    finally:
        _invoked_as = previous


def command_parser(prog: str, description: str | None = None, *, epilog: str | None = None,
                   raw: bool = True) -> argparse.ArgumentParser:
    """The parser of a command: ``prog`` is its official script name; ``raw`` keeps the line breaks of
    ``description`` / ``epilog`` (``RawDescriptionHelpFormatter``)."""
    return argparse.ArgumentParser(
        prog=_invoked_as or prog, description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter if raw else argparse.HelpFormatter)


def add_record_keys(p: argparse.ArgumentParser) -> None:
    """``--gt-key`` / ``--pred-key``: the record keys of ground truth and prediction in a prediction file."""
    p.add_argument("--gt-key", default="gt", help="record key of the ground truth (default: gt)")
    p.add_argument("--pred-key", default="pred", help="record key of the prediction (default: pred)")
