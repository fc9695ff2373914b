"""Exception types shared by the package.

Every error that is the user's input (a missing file, malformed JSON, a record without the expected keys, …) is
raised as :class:`InputError` with a one-line message; the CLIs turn it into ``error: <message>`` on stderr and
exit code 2 (see :func:`unimumer.cli.run_main`), never a traceback.
"""


class UniMuMERError(Exception):
    """Base class of the errors raised on purpose by unimumer."""


class InputError(UniMuMERError, ValueError):
    """Bad user input (file missing / unreadable / wrong structure). The message is one line and names the culprit."""
