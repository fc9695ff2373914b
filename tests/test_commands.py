"""Command-line surface: every official script path keeps the flags it printed in --help before the commands
moved to unimumer.commands (tests/fixtures/cli_flags.json, recorded from the scripts before the move)."""
import json

import pytest
from cli_help import FIXTURE, PYTHON_PATHS, SHELL_PATHS, help_flags

RECORDED = json.loads(FIXTURE.read_text(encoding="utf-8"))


def test_fixture_covers_every_official_path():
    assert sorted(RECORDED) == sorted(PYTHON_PATHS + SHELL_PATHS)


@pytest.mark.parametrize("path", sorted(RECORDED))
def test_official_path_help_flags_unchanged(path):
    assert help_flags(path) == RECORDED[path]
