"""The flags each official command path prints in ``--help``, read from its argparse parser.

``help_flags(cmd)`` runs ``cmd --help`` in a child interpreter whose ``ArgumentParser.print_help`` reports, as JSON,
the option strings of every shown action of the parser asked for help, and of each sub-command's parser
(key ``"<name>"``; the top parser is ``""``). Bash scripts (``eval/*.sh``): the flags of their ``Usage:`` line.
``python tests/cli_help.py`` rewrites ``tests/fixtures/cli_flags.json`` (only when a flag change is intended).
"""
import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "cli_flags.json"

_PROBE = r"""
import argparse, json, runpy, sys

def _flags(parser):
    out = {"": sorted(o for a in parser._actions if a.help != argparse.SUPPRESS for o in a.option_strings)}
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                out[name] = _flags(sub)[""]
    return out

def _print_help(self, file=None):
    sys.stdout.write("CLI-FLAGS " + json.dumps(_flags(self), sort_keys=True) + "\n")
    sys.stdout.flush()

argparse.ArgumentParser.print_help = _print_help
target, *args = sys.argv[1:]
if target.startswith("-m"):
    sys.argv = [target[2:], *args]
    runpy.run_module(target[2:], run_name="__main__", alter_sys=True)
else:
    sys.argv = [target, *args]
    runpy.run_path(target, run_name="__main__")
"""

PYTHON_PATHS = sorted(
    str(p.relative_to(ROOT)) for pattern in ("scripts/*.py", "preprocess/*.py") for p in ROOT.glob(pattern))
SHELL_PATHS = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("eval/eval_*.sh"))


def help_flags(target: str, *args: str) -> dict[str, list[str]]:
    """Flags of ``target --help`` (a script path, or ``-mMODULE`` for ``python -m MODULE``)."""
    if target.endswith(".sh"):
        out = subprocess.run(["bash", target, *args, "--help"], cwd=ROOT, capture_output=True, text=True,
                             timeout=60, check=True).stdout
        usage = next(line for line in out.splitlines() if line.startswith("Usage:"))
        return {"": sorted(set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", usage)))}
    proc = subprocess.run([sys.executable, "-c", _PROBE, target, *args, "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("CLI-FLAGS ")), None)
    assert line is not None, f"{target} --help printed no parser help (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(line[len("CLI-FLAGS "):])


def all_flags() -> dict[str, dict[str, list[str]]]:
    return {path: help_flags(path) for path in PYTHON_PATHS + SHELL_PATHS}


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(all_flags(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE}")
