"""``make demo`` / ``scripts/demo.py``: the whole pipeline, offline on CPU, on the bundled real sample.

Stages (each the real command a GPU user runs; the model is a tiny random checkpoint, so **its predictions are
meaningless**): model, data, EDL error corpus, config checks, training, vLLM inference, the official predictions
scored byte-identically with ExpRate@CDM, summary. Output: everything under ``--output-dir`` (default
``demo_output/``); a folder without the demo's marker file is refused, a re-run starts it afresh. Stages in
detail: README.md ("Two commands").
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, UniMuMERError
from ..files import atomic_write_text
from ..paths import REPO_ROOT, TRAIN_DIR

MARKER = ".unimumer-demo"
SAMPLE = REPO_ROOT / "data" / "sample"
PAPER_CONFIG = TRAIN_DIR / "Uni-MuMER-train.yaml"
FAMILY = "qwen2_5_vl"
# CPU-sized overrides of the paper config (the rest, DeepSpeed ZeRO-2 included, is the real config)
CPU_TRAIN_OVERRIDES = [
    "bf16=false", "per_device_train_batch_size=1", "gradient_accumulation_steps=1", "dataloader_num_workers=0",
    "preprocessing_num_workers=1", "report_to=none", "logging_steps=1",
]
DISCLAIMER = ("NOTE: the demo model is a tiny RANDOMLY INITIALISED Qwen2.5-VL trained for a few steps on CPU: its "
              "predictions are meaningless. Every stage is nevertheless the real one.")


class DemoError(UniMuMERError):
    """A demo check failed (an invalid config, a report that differs from the official one)."""


def _env() -> dict:
    env = dict(os.environ)
    env.update(DISABLE_VERSION_CHECK="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", CUDA_VISIBLE_DEVICES="", PYTHON=sys.executable)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # llamafactory-cli, torchrun
    for k in ("NNODES", "NODE_RANK", "NPROC_PER_NODE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _prepare_output(out: Path) -> None:
    if out.exists():
        if not (out / MARKER).is_file():
            raise InputError(f"{out}: exists and was not made by the demo; choose another --output-dir")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by unimumer's demo (scripts/demo.py); safe to delete\n", encoding="utf-8")


class _Stages:
    def __init__(self, log=print):
        self.times: dict[str, float] = {}
        self.log = log

    def run(self, name: str, title: str, fn, *args, **kwargs):
        self.log(f"\n=== [{len(self.times) + 1}] {title}")
        t0 = time.time()
        result = fn(*args, **kwargs)
        self.times[name] = time.time() - t0
        self.log(f"    done in {self.times[name]:.1f} s")
        return result


@dataclass
class DemoContext:
    """Where a demo run writes and how it runs its commands; every stage function takes one.

    ``out``: the demo folder (absolute); ``env``: the environment of the subprocesses (:func:`_env`); ``log``: the
    line printer. The folders below ``out`` are properties.
    """

    out: Path
    env: dict = field(default_factory=lambda: _env())
    log: Callable[[str], object] = print

    @property
    def data(self) -> Path:
        return self.out / "data"

    @property
    def logs(self) -> Path:
        return self.out / "logs"

    @property
    def info(self) -> Path:
        """The demo's own ``dataset_info.json`` (the repository's ``data/`` registry is never touched)."""
        return self.data / "dataset_info.json"

    @property
    def results_dir(self) -> Path:
        return self.data / "CROHME" / "results_tiny"


def stage_model(ctx: DemoContext) -> Path:
    """Stage 1: build the tiny random :data:`FAMILY` checkpoint in ``models/tiny-<family>``; returns its folder."""
    from ..testing.tiny_models import build_tiny_model

    tiny = build_tiny_model(FAMILY, ctx.out / "models" / f"tiny-{FAMILY}")
    ctx.log(f"    {tiny}")
    return tiny


def stage_data(ctx: DemoContext, n_train: int | None = None, n_test: int | None = None) -> tuple[Path, dict, Path]:
    """Stage 2: the bundled training images → vanilla / Tree-CoT / counting datasets registered in
    ``data/dataset_info.json``; the bundled CROHME 2014 images → the official test prompt file.

    ``n_train`` / ``n_test``: how many images (``None``: all 48). Returns (vanilla file, written datasets,
    test prompt file).
    """
    from ..data.prompt_files import build_prompts_from_crohme
    from ..data.training_sets import build_training_set

    vanilla, st = build_prompts_from_crohme(SAMPLE / "crohme" / "train", ctx.data, "CROHME", "train",
                                            limit=n_train, workers=1)
    ctx.log(f"    vanilla: {vanilla.relative_to(ctx.out)} ({st.get('written', 0)} records, "
            f"{st.get('missing_image', 0)} missing / {st.get('unreadable_image', 0)} unreadable images)")
    written = build_training_set(vanilla, "crohme_train", ("vanilla", "tree", "can"), dataset_info=ctx.info,
                                 workers=1)
    prompts, st2 = build_prompts_from_crohme(SAMPLE / "crohme" / "2014", ctx.data, "CROHME", "2014", limit=n_test,
                                             repo_root=ctx.out, workers=1)
    ctx.log(f"    test prompts: {prompts.relative_to(ctx.out)} ({st2.get('written', 0)} records)")
    return vanilla, written, prompts


def stage_edl(ctx: DemoContext, vanilla: Path, model: Path, folds: int = 2, samples: int = 2,
              max_tokens: int = 24, fold_train_steps: int = 2,
              preprocessing: str = "official") -> tuple[dict, dict]:
    """Stage 3: the cross-fold error corpus (paper Fig. 4) → ``crohme_train_error_find`` / ``_error_fix`` next
    to the vanilla file, registered in the demo's ``dataset_info.json``.

    Folds train ``model`` with the paper config (CPU overrides, no DeepSpeed) for ``fold_train_steps`` steps; vLLM
    samples ``samples`` candidates per held-out image at T = 1.0 with the pipeline's seed and the model input of
    ``preprocessing`` (``official`` / ``training``, as ``scripts/vllm_infer.py --preprocessing``). Returns (the error
    corpus summary of :func:`unimumer.edl.corpus.build_error_corpus`, ``{dataset: records}`` of the registry).
    """
    from ..edl.corpus import CorpusSettings, build_error_corpus
    from ..files import read_json

    settings = CorpusSettings(
        train=str(vanilla), name="crohme_train", folds=folds, samples=samples, temperature=1.0,
        max_tokens=max_tokens, base_config=str(PAPER_CONFIG), model=str(model), image_root=str(ctx.data),
        preprocessing=preprocessing,
        train_overrides=[*CPU_TRAIN_OVERRIDES, f"max_steps={fold_train_steps}", "deepspeed=null",
                         "save_only_model=true"],
    )
    corpus = build_error_corpus(
        settings, ctx.out / "error_corpus", output_dir=vanilla.parent, dataset_info=ctx.info,
        engine_kwargs={"dtype": "float32", "max_model_len": 2048, "enforce_eager": True},
        log=lambda m: ctx.log("    " + m),
    )
    registry = read_json(ctx.info)
    datasets = {name: len(read_json(ctx.data / entry["file_name"])) for name, entry in registry.items()}
    for name, n in datasets.items():
        ctx.log(f"    {name:<26} {n:>4} records")
    return corpus, datasets


def stage_configs(ctx: DemoContext) -> list[str]:
    """Stage 4: every ``train/*.yaml`` through LLaMA-Factory's parser (registry only); returns their paths.

    Raises :class:`DemoError` naming the invalid configs.
    """
    from ..training.check import check_configs

    configs = sorted(TRAIN_DIR.glob("*.yaml"))
    results = check_configs(configs, check_files=False, workdir=REPO_ROOT)
    for r in results:
        ctx.log("    " + r.render().splitlines()[0])
    bad = [r.config for r in results if not r.ok]
    if bad:
        raise DemoError(f"invalid training configs: {', '.join(bad)}")
    return [str(c.relative_to(REPO_ROOT)) for c in configs]


def stage_train(ctx: DemoContext, model: Path, datasets: Sequence[str], train_steps: int = 4) -> dict:
    """Stage 5: ``scripts/train.sh train/Uni-MuMER-train.yaml`` (DeepSpeed ZeRO-2, CPU overrides) on ``datasets``
    for ``train_steps`` steps into ``saves/uni-mumer-tiny`` (log ``logs/train.log``).

    Returns ``{"command", "losses", "model"}``. Raises :class:`~unimumer.edl.corpus.StageError` when it fails.
    """
    import json

    from ..edl.corpus import run_logged

    model_out = ctx.out / "saves" / "uni-mumer-tiny"
    cmd = ["bash", "scripts/train.sh", str(PAPER_CONFIG.relative_to(REPO_ROOT)), f"model_name_or_path={model}",
           f"dataset_dir={ctx.data}", f"dataset={','.join(datasets)}", f"output_dir={model_out}",
           f"max_steps={train_steps}", f"save_steps={train_steps}", *CPU_TRAIN_OVERRIDES]
    env = dict(ctx.env, HF_DATASETS_CACHE=str(ctx.out / ".cache" / "hf_datasets"))
    run_logged(cmd, ctx.logs / "train.log", "stage 'train'", env, cwd=REPO_ROOT)
    rows = [json.loads(x) for x in (model_out / "trainer_log.jsonl").read_text().splitlines() if x.strip()]
    losses = [r["loss"] for r in rows if "loss" in r]
    ctx.log(f"    {' '.join(cmd[:3])} … ({len(datasets)} datasets, {train_steps} steps, DeepSpeed ZeRO-2)")
    ctx.log(f"    losses: {', '.join(f'{v:.3f}' for v in losses)}; model: {model_out.relative_to(ctx.out)}")
    return {"command": " ".join(cmd), "losses": losses, "model": str(model_out)}


def stage_infer(ctx: DemoContext, model: str | Path, test_prompts: Path, max_tokens: int = 24,
                preprocessing: str = "official") -> dict:
    """Stage 6: ``scripts/vllm_infer.py --preprocessing PREPROCESSING`` (greedy, vLLM on CPU) with ``model`` on
    the test prompt file's folder →
    ``data/CROHME/results_tiny/crohme_2014_pred.json`` + its official report (log ``logs/infer.log``).

    Returns ``{"pred_file", "report", "metrics"}``. Raises :class:`~unimumer.edl.corpus.StageError`.
    """
    from ..edl.corpus import run_logged
    from ..evaluation.metrics import evaluate_file

    cmd = [sys.executable, "scripts/vllm_infer.py", "--model", str(model), "--input-dir", str(test_prompts.parent),
           "--output-dir", str(ctx.results_dir), "--image-root", str(ctx.out), "--max-tokens", str(max_tokens),
           "--temperature", "0", "--dtype", "float32", "--enforce-eager", "--preprocessing", preprocessing]
    run_logged(cmd, ctx.logs / "infer.log", "stage 'infer'", ctx.env, cwd=REPO_ROOT)
    pred = ctx.results_dir / "crohme_2014_pred.json"
    m = evaluate_file(pred)
    ctx.log(f"    {pred.relative_to(ctx.out)}: {m['total_samples']} records, ExpRate {m['exact_match_rate']:.2f} % "
            "(meaningless: random tiny model)")
    return {"pred_file": str(pred), "report": str(ctx.results_dir / "crohme_2014_results.txt"), "metrics": m}


def stage_official(ctx: DemoContext, years: Sequence[int] = (2014, 2016, 2019), cdm: bool = True) -> list[dict]:
    """Stage 7: the bundled official predictions of each CROHME year scored into ``official/``: the report must
    equal the official ``*_results.txt`` byte for byte; plus ExpRate@CDM (:mod:`unimumer.evaluation.cdm`) when ``cdm``, with
    the CDM toolkit version the paper used (``2025-03``, :data:`unimumer.evaluation.cdm.toolkit.PAPER_TOOLKIT`), so the logged
    CROHME average is the paper's (82.86 in the paper; the official 415d534 toolkit gives 82.89).

    Returns one row per year ``{"year", "metrics", "identical_to_official_report"[, "exprate_cdm",
    "cdm_toolkit"]}``. Raises :class:`DemoError` when a report differs.
    """
    from ..evaluation.metrics import evaluate_file, format_report
    from ..files import read_json, write_json

    rows = []
    for year in years:
        src = SAMPLE / "official_predictions" / f"crohme_{year}.json"
        dst = ctx.out / "official" / f"crohme_{year}_pred.json"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        metrics = evaluate_file(dst)
        report = format_report(metrics)
        atomic_write_text(dst.with_name(f"crohme_{year}_results.txt"), report)
        official_report = (SAMPLE / "official_predictions" / f"crohme_{year}_results.txt").read_text("utf-8")
        row = {"year": year, "metrics": metrics, "identical_to_official_report": report == official_report}
        if cdm:
            from ..evaluation.cdm import evaluate_cdm
            from ..evaluation.cdm.toolkit import PAPER_TOOLKIT

            res = evaluate_cdm(read_json(dst), toolkit=PAPER_TOOLKIT)
            write_json(dst.with_name(f"crohme_{year}_cdm.json"), res, indent=2)
            row["exprate_cdm"] = res["exprate_cdm"]
            row["cdm_toolkit"] = PAPER_TOOLKIT
        rows.append(row)
    cdm_head = f"ExpRate@CDM ({rows[0]['cdm_toolkit']})" if rows and "cdm_toolkit" in rows[0] else "ExpRate@CDM"
    ctx.log(f"    | CROHME | records | ExpRate | ≤1 | ≤2 | ≤3 | BLEU-4 | {cdm_head} | report = official |")
    ctx.log("    |---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["metrics"]
        ctx.log(f"    | {r['year']} | {m['total_samples']} | {m['exact_match_rate']:.2f} | {m['error_le_1_rate']:.2f} | "
                f"{m['error_le_2_rate']:.2f} | {m['error_le_3_rate']:.2f} | {m['bleu4_score']:.2f} | "
                f"{r.get('exprate_cdm', float('nan')):.2f} | {'yes' if r['identical_to_official_report'] else 'NO'} |")
    if cdm and len(rows) == 3:
        mean = sum(r["exprate_cdm"] for r in rows) / 3
        ctx.log(f"    ExpRate@CDM CROHME average {mean:.2f} (CDM toolkit {rows[0]['cdm_toolkit']}; paper 82.86)")
    if not all(r["identical_to_official_report"] for r in rows):
        raise DemoError("a report differs from the official one (see official/)")
    return rows


def stage_summary(ctx: DemoContext, datasets: dict, stage_times: dict) -> dict:
    """Stage 8: ``report.md`` (the cross-dataset table of ``results_tiny`` and ``official``, the datasets built,
    the stage times) and ``exprate.png``. Returns ``{"markdown", "plot"}`` (paths)."""
    from ..evaluation.metrics.summary import collect_rows, markdown_table, plot_exprate

    rows = collect_rows([ctx.results_dir, ctx.out / "official"])
    png = plot_exprate(rows, ctx.out / "exprate.png")
    lines = [
        "# unimumer demo report", "", DISCLAIMER, "",
        "## Scores next to the paper (Uni-MuMER Qwen2.5-VL-3B)", "",
        markdown_table(rows).replace("# ", "### ", 1), "",
        "Run `results_tiny`: the tiny demo model's predictions (meaningless). Run `official`: the official Uni-MuMER "
        "predictions, scored by this project (reports byte-identical to the official ones).",
        "", f"![ExpRate per split]({png.name})", "",
        "## What was built", "",
        "| dataset | records |", "|---|---|", *[f"| {k} | {v} |" for k, v in datasets.items()], "",
        "## Stage times (s)", "",
        "| stage | seconds |", "|---|---|", *[f"| {k} | {v:.1f} |" for k, v in stage_times.items()], "",
    ]
    path = atomic_write_text(ctx.out / "report.md", "\n".join(lines))
    return {"markdown": str(path), "plot": str(png)}


def run_demo(
    output_dir: str | os.PathLike = REPO_ROOT / "demo_output",
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    folds: int = 2,
    samples: int = 2,
    max_tokens: int = 24,
    train_steps: int = 4,
    fold_train_steps: int = 2,
    official_years: Sequence[int] = (2014, 2016, 2019),
    cdm: bool = True,
    preprocessing: str = "official",
    log=print,
) -> dict:
    """Run the demo pipeline (see the module docstring): the stage functions above, in order, timed.

    Inputs: the output folder, the sample sizes (``None``: the whole bundled sample, 48 train / 48 test images),
    the error-corpus settings (``folds`` K, ``samples`` N, ``max_tokens`` per generated answer), training steps
    (final run and per fold), which official CROHME years to score, whether to compute ExpRate@CDM, the model
    input of the sampling and inference stages (``preprocessing``: ``official`` / ``training``).
    Output: ``{"output_dir", "stage_seconds", "datasets", "train", "predictions", "official", "report"}``; files
    under ``output_dir`` (``data/``, ``models/``, ``saves/``, ``error_corpus/``, ``official/``, ``logs/``,
    ``report.md``, ``exprate.png``). Raises :class:`InputError` (bad output folder / sample) and
    :class:`~unimumer.edl.corpus.StageError` (a training / inference run failed; names its log) and
    :class:`DemoError` (invalid configs, a report that differs from the official one).
    """
    from ..files import write_json

    out = Path(output_dir).resolve()
    _prepare_output(out)
    ctx = DemoContext(out, log=log)
    stages = _Stages(log)
    log(DISCLAIMER)
    summary: dict = {"output_dir": str(out)}

    tiny = stages.run("model", f"tiny random {FAMILY} checkpoint (scripts/make_tiny_model.py)", stage_model, ctx)
    vanilla, _, test_prompts = stages.run("data", "task data from the bundled CROHME sample", stage_data, ctx,
                                          n_train, n_test)
    corpus, datasets = stages.run(
        "edl", f"error-driven learning data: cross-fold error corpus (K={folds}, N={samples}, T=1.0)",
        stage_edl, ctx, vanilla, tiny, folds, samples, max_tokens, fold_train_steps, preprocessing)
    summary["datasets"] = datasets
    summary["error_corpus"] = corpus
    summary["configs"] = stages.run("configs", "every train/*.yaml through LLaMA-Factory's parser "
                                    "(scripts/check_config.py --registry-only)", stage_configs, ctx)
    summary["train"] = stages.run("train", "fine-tuning the tiny model on all five tasks (scripts/train.sh)",
                                  stage_train, ctx, tiny, list(datasets), train_steps)
    summary["predictions"] = stages.run("infer", "vLLM batch inference on the CROHME 2014 sample "
                                        "(scripts/vllm_infer.py)", stage_infer, ctx, summary["train"]["model"],
                                        test_prompts, max_tokens, preprocessing)
    summary["official"] = stages.run("official", "the paper's CROHME table from the official predictions",
                                     stage_official, ctx, official_years, cdm)
    summary["report"] = stages.run("summary", "Markdown report and ExpRate chart", stage_summary, ctx, datasets,
                                   stages.times)
    summary["stage_seconds"] = stages.times
    write_json(out / "summary.json", summary, indent=2)

    data = ctx.data
    log("\n" + "=" * 100)
    log(f"unimumer demo: done in {sum(stages.times.values()):.0f} s")
    log(f"  built     {len(datasets)} datasets ({', '.join(f'{k} {v}' for k, v in datasets.items())})")
    log(f"            in {data.relative_to(REPO_ROOT) if data.is_relative_to(REPO_ROOT) else data}, "
        "registered in its dataset_info.json")
    log(f"  EDL       {corpus.get('candidates_sampled', '?')} candidates sampled by the fold models, "
        f"{corpus.get('wrong', '?')} wrong → error_find / error_fix")
    log(f"  checked   {len(summary['configs'])} training configs (LLaMA-Factory parser): all valid")
    log(f"  trained   {summary['train']['model']} ({train_steps} steps, final loss "
        f"{summary['train']['losses'][-1]:.3f})")
    log(f"  predicted {summary['predictions']['pred_file']}")
    log(f"  scored    official CROHME {', '.join(str(y) for y in official_years)}: reports identical to the "
        "official ones")
    log(f"  report    {summary['report']['markdown']} (+ {Path(summary['report']['plot']).name})")
    log(DISCLAIMER)
    return summary
