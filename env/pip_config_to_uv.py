"""Print, one per line, the ``uv pip install`` arguments for the package sources pip is configured with here.

Usage: ``mapfile -t ARGS < <(python env/pip_config_to_uv.py [EXTRA_CONSTRAINT_FILE ...])`` (env/setup_cpu_env.sh).
Reads ``pip config list`` (every scope: files and ``PIP_*`` variables) and maps ``index-url``, ``extra-index-url``,
``find-links`` and ``constraint`` to the same uv options; the given files come first among the constraints.
``--index-strategy unsafe-best-match`` is pip's rule (the best version over all indexes); pip's ``cert`` is
passed to uv as ``SSL_CERT_FILE`` by the caller's environment only when set there.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

KEYS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links",
        "constraint": "--constraint"}


def pip_config() -> dict[str, list[str]]:
    """``{key: [values]}`` from ``pip config list`` (``scope.key='v1 v2'`` lines; later scopes add values)."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        name, sep, value = line.partition("=")
        key = name.rsplit(".", 1)[-1]
        if not sep or key not in KEYS:
            continue
        for item in shlex.split(value)[0].split() if value.strip() else []:
            if item not in found.setdefault(key, []):
                found[key].append(item)
    return found


def main(extra_constraints: list[str]) -> None:
    found = pip_config()
    found.setdefault("constraint", [])[:0] = extra_constraints
    args = ["--index-strategy", "unsafe-best-match"]
    for key, values in found.items():
        for value in values[:1] if key == "index-url" else values:
            args += [KEYS[key], value]
    print("\n".join(args))


if __name__ == "__main__":
    main(sys.argv[1:])
