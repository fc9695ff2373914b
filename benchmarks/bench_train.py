#!/usr/bin/env python
"""Benchmark: training-side tooling on CPU — config checking, released-data import, smoke training per family.

A. ``scripts/check_config.py train/*.yaml --registry-only``: the six configs through LLaMA-Factory's own parser in
   one process (wall time of the whole command, imports included).
B. ``scripts/prepare_released_data.py`` on a synthetic release in the official shape: the five ``crohme_train*``
   task configs (parquet written with ``datasets``, images embedded as ``{bytes, path}`` structs), ``--records``
   rows each, built from 24 real CROHME train images (one image per base record, shared by the five task configs as
   in the release); records/s and images written.
C. Smoke training through ``scripts/train.sh`` (LLaMA-Factory torchrun launch, the config's own DeepSpeed stage on
   the CPU accelerator), tiny model of each family, 2 steps, batch 1, on the five-task CROHME data: wall time of the
   launch and LLaMA-Factory's ``train_runtime``.

Prints a Markdown report and writes it to benchmarks/results/bench_train.md.
Usage: flock /tmp/unimumer-heavy.lock .venv/bin/python benchmarks/bench_train.py [--records 4000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAMILIES = {"qwen2_5_vl": "Uni-MuMER-train.yaml", "qwen3_vl": "Uni-MuMER-Qwen3-VL-2B.yaml",
            "qwen3_5": "Uni-MuMER-Qwen3.5-2B.yaml"}


def env() -> dict:
    e = dict(os.environ)
    e.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}", PYTHON=sys.executable,
             CUDA_VISIBLE_DEVICES="", DISABLE_VERSION_CHECK="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
             HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return e


def timed(cmd: list[str], cwd: Path, extra: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env={**env(), **(extra or {})}, capture_output=True, text=True)
    return time.perf_counter() - t, res


def part_a() -> list[str]:
    configs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "train").glob("*.yaml"))
    dt, res = timed([sys.executable, "scripts/check_config.py", *configs, "--registry-only"], ROOT)
    ok = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr[-300:]
    return ["## A. check_config (LLaMA-Factory parser, 6 configs, one process)", "",
            "| configs | wall s (imports included) | result |", "|---|---|---|",
            f"| {len(configs)} | {dt:.1f} | {ok} (exit {res.returncode}) |", ""]


def part_b(work: Path, records: int, smoke) -> list[str]:
    import datasets

    from unimumer.files import read_json_list

    src = work / "release"
    feats = datasets.Features({"messages": [{"from": datasets.Value("string"), "value": datasets.Value("string")}],
                               "images": datasets.Sequence(datasets.Image())})
    for name in smoke.names:
        recs = read_json_list(smoke.root / f"CROHME/train/{name}.json")
        rows = {"messages": [], "images": []}
        for i in range(records):
            r = recs[i % len(recs)]
            img = r["images"][0]
            rows["messages"].append(r["messages"])
            rows["images"].append([{"bytes": (smoke.root / img).read_bytes(), "path": f"{Path(img).stem}_{i}.png"}])
        out = src / f"parquet_{name}" / "train-00000-of-00001.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_dict(rows, features=feats).to_parquet(str(out))
    size = sum(p.stat().st_size for p in src.rglob("*.parquet"))
    dt, res = timed([sys.executable, str(ROOT / "scripts/prepare_released_data.py"), "--source", str(src),
                     "--output", str(work / "data"), "--no-progress"], work)
    n_img = len(list((work / "data/CROHME/train/images").iterdir()))
    total = records * len(smoke.names)
    return ["## B. Released-data import (prepare_released_data.py)", "",
            "| configs | records | parquet MB | images written | wall s | records/s | exit |", "|---|---|---|---|---|---|---|",
            f"| {len(smoke.names)} | {total:,} | {size / 1e6:.1f} | {n_img:,} | {dt:.1f} | {total / dt:,.0f} | "
            f"{res.returncode} |", ""]


def part_c(work: Path, smoke) -> list[str]:
    from unimumer.testing.tiny_models import cached_tiny_model

    lines = ["## C. Smoke training via scripts/train.sh (CPU, tiny model, 2 steps, batch 1, SKIP_CHECK=1)", "",
             "| family | config | DeepSpeed | launch wall s | train_runtime s | final loss | exit |",
             "|---|---|---|---|---|---|---|"]
    cache = Path(os.environ.get("UNIMUMER_TINY_CACHE", ROOT / ".cache" / "tiny_models"))
    for fam, config in FAMILIES.items():
        tiny = cached_tiny_model(fam, cache)
        out = work / f"out_{fam}"
        cfg_text = (ROOT / "train" / config).read_text()
        stage = "ZeRO-2" if "ds_z2" in cfg_text else "ZeRO-3"
        cmd = ["bash", "scripts/train.sh", f"train/{config}", f"model_name_or_path={tiny}",
               f"dataset_dir={smoke.root}", f"dataset={','.join(smoke.names)}", f"output_dir={out}", "bf16=false",
               "max_steps=2", "per_device_train_batch_size=1", "gradient_accumulation_steps=1",
               "dataloader_num_workers=0", "preprocessing_num_workers=1", "report_to=none", "save_steps=2"]
        dt, res = timed(cmd, ROOT, {"SKIP_CHECK": "1", "HF_DATASETS_CACHE": str(work / "hf_datasets")})
        runtime, loss = "-", "-"
        if res.returncode == 0:
            runtime = f"{json.loads((out / 'all_results.json').read_text())['train_runtime']:.1f}"
            rows = [json.loads(x) for x in (out / "trainer_log.jsonl").read_text().splitlines() if x.strip()]
            loss = f"{[r['loss'] for r in rows if 'loss' in r][-1]:.3f}"
        lines.append(f"| {fam} | {config} | {stage} | {dt:.1f} | {runtime} | {loss} | {res.returncode} |")
    return [*lines, ""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=4000, help="rows per released config in part B (default 4000)")
    ap.add_argument("--workdir", help="work folder (default: a temporary folder)")
    ap.add_argument("--skip-training", action="store_true", help="skip part C")
    a = ap.parse_args()
    from unimumer.testing.smoke import build_smoke_data

    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        work = Path(a.workdir) if a.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        smoke = build_smoke_data(work / "smoke", n=24)
        report = ["# bench_train: training tooling on CPU", "",
                  f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                  f"Python {platform.python_version()}. Command: `flock /tmp/unimumer-heavy.lock .venv/bin/python "
                  f"benchmarks/bench_train.py --records {a.records}`", ""]
        report += part_a()
        report += part_b(work, a.records, smoke)
        if not a.skip_training:
            report += part_c(work, smoke)
    text = "\n".join(report)
    print(text)
    out = ROOT / "benchmarks" / "results" / "bench_train.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
