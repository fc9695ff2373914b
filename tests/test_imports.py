"""Every ``unimumer`` import in the package, the tests, the benchmarks and the official scripts resolves, including
the lazy ones inside functions (which a plain ``import`` of each module never runs), and no library module imports
a command module (``unimumer.commands`` imports the library, never the reverse)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("unimumer", "tests", "benchmarks", "scripts", "preprocess")


def _imports(path: Path):
    """``(line, module, names)`` of every ``unimumer`` import in ``path`` (relative ones resolved)."""
    rel = path.relative_to(REPO)
    package = ".".join(rel.parent.parts)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] == "unimumer":
                yield node.lineno, module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "unimumer":
                    yield node.lineno, alias.name, []


def _files():
    for folder in FOLDERS:
        yield from sorted(p for p in (REPO / folder).rglob("*.py") if "__pycache__" not in p.parts)


def test_every_unimumer_import_resolves():
    missing = []
    for path in _files():
        for line, module, names in _imports(path):
            where = f"{path.relative_to(REPO)}:{line}"
            if importlib.util.find_spec(module) is None:
                missing.append(f"{where}: no module {module}")
                continue
            loaded = importlib.import_module(module)
            for name in names:
                if name != "*" and not hasattr(loaded, name) and importlib.util.find_spec(f"{module}.{name}") is None:
                    missing.append(f"{where}: {module} has no {name}")
    assert not missing, "\n".join(missing)


def test_no_library_module_imports_a_command_module():
    offenders = [f"{path.relative_to(REPO)}:{line}: {module}"
                 for path in (REPO / "unimumer").rglob("*.py")
                 if "__pycache__" not in path.parts and path.relative_to(REPO).parts[1] not in ("commands", "__main__.py")
                 for line, module, _ in _imports(path) if module.startswith("unimumer.commands")]
    assert not offenders, "\n".join(offenders)
