"""Command-line surface: the ``unimumer`` command and every official script path.

The official paths must keep the flags they printed in --help before the commands moved to unimumer.commands
(tests/fixtures/cli_flags.json, recorded from the scripts before the move); ``unimumer <command>`` offers the same.
"""
import json
import re
import subprocess
import sys

import pytest
import tomllib
from cli_help import FIXTURE, PYTHON_PATHS, ROOT, SHELL_PATHS, help_flags

from unimumer.commands.main import COMMANDS, main, usage

RECORDED = json.loads(FIXTURE.read_text(encoding="utf-8"))


def test_fixture_covers_every_official_path():
    assert sorted(RECORDED) == sorted(PYTHON_PATHS + SHELL_PATHS)


@pytest.mark.parametrize("path", sorted(RECORDED))
def test_official_path_help_flags_unchanged(path):
    assert help_flags(path) == RECORDED[path]


def test_every_official_script_is_a_command():
    assert sorted(script for _, script, _ in COMMANDS.values()) == PYTHON_PATHS


def _unimumer(*args):
    return subprocess.run([sys.executable, "-m", "unimumer", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_unimumer_help_lists_every_command_on_one_screen():
    proc = _unimumer("--help")
    assert proc.returncode == 0 and proc.stdout == usage()
    listed = re.findall(r"^  (\S+) ", proc.stdout, re.M)
    assert listed == list(COMMANDS)
    assert len(proc.stdout.splitlines()) <= 40 and max(map(len, proc.stdout.splitlines())) <= 110


def test_unimumer_without_or_with_an_unknown_command(capsys):
    assert main([]) == 2 and "usage: unimumer <command>" in capsys.readouterr().err
    assert main(["evl"]) == 2
    assert capsys.readouterr().err == "error: unknown command 'evl' (did you mean eval?); unimumer --help lists the commands\n"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_unimumer_command_help(name):
    """``unimumer NAME --help`` exits 0 and offers exactly the flags of its official script."""
    proc = _unimumer(name, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage: ")
    if COMMANDS[name][0].startswith("unimumer.commands."):
        assert proc.stdout.startswith(f"usage: unimumer {name} ")
    assert help_flags("-munimumer", name) == RECORDED[COMMANDS[name][1]]


def test_unimumer_runs_a_command_like_its_script(tmp_path):
    """``unimumer eval`` writes the same report as scripts/eval_metrics_calculator.py (official prediction file)."""
    pred = ROOT / "tests" / "fixtures" / "reference" / "predictions" / "crohme2023_test_pred.json"
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    assert _unimumer("eval", "--input", str(pred), "--output", str(a)).returncode == 0
    script = subprocess.run([sys.executable, "scripts/eval_metrics_calculator.py", "--input", str(pred), "--output",
                             str(b)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert script.returncode == 0 and a.read_bytes() == b.read_bytes()
    assert a.read_bytes() == (pred.parent / "crohme2023_test_results.txt").read_bytes()


def _requirements(path):
    out = {}
    for line in (ROOT / path).read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            out[re.split(r"[<>=\[ ]", line)[0].lower()] = line.replace(" ", "")
    return out


def test_pyproject_declares_the_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"] == {"unimumer": "unimumer.commands.main:main"}
    declared = {}
    for spec in project["dependencies"] + [s for extra in project["optional-dependencies"].values() for s in extra]:
        if not spec.startswith("unimumer["):
            declared[re.split(r"[<>=\[ ]", spec)[0].lower()] = spec.replace(" ", "")
    wanted = {**_requirements("requirements.txt"), **_requirements("requirements_training.txt")}
    assert {k: declared.get(k) for k in wanted} == wanted
    extras = project["optional-dependencies"]
    assert {"train", "serve", "cdm", "ray", "dev"} <= set(extras)
    assert "gradio>=6.0,<7" in extras["serve"] and "unimumer[infer]" in extras["serve"]
