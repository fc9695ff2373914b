"""The commands: one module per command, holding its parser and help and calling the library.

Each module exposes ``main(argv) -> int``; the official scripts (``scripts/``, ``preprocess/``) and the
``unimumer`` console script (:mod:`unimumer.commands.main`) call it. Shared parser set-up: :mod:`.common`.
"""
