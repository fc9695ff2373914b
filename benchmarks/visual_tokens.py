#!/usr/bin/env python
"""Visual tokens each ``--preprocessing`` mode gives each model family on the bundled CROHME 2014 images.

Input: the 48 real CROHME 2014 test images of ``data/sample/crohme/2014/img`` (read black on white with
``unimumer.images.load_image``) and the tiny checkpoints of :mod:`unimumer.testing.tiny_models`, which carry the released
checkpoints' image-processor configuration (the token count depends only on it, not on the weights). For each
family and mode the engine's own pre-processing runs (:class:`unimumer.inference.engines._Base`:
``prepare_image`` + the checkpoint's processor) and the ``image_grid_thw`` gives the visual tokens
(``t·h·w / merge²``). Also listed: the bounds the project passed in its first versions (``min_pixels 1024``,
``max_pixels 262144`` handed to the processor, overriding the checkpoint's floor).

Output: a Markdown table on stdout and in ``benchmarks/results/visual_tokens.md``.
Usage: ``python benchmarks/visual_tokens.py [--cache DIR]`` (default cache: ``$UNIMUMER_TINY_CACHE`` or
``.cache/tiny_models``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unimumer.images import load_image  # noqa: E402
from unimumer.inference.engines import GenerationSettings, _Base  # noqa: E402
from unimumer.tasks import TASKS  # noqa: E402
from unimumer.testing.tiny_models import FAMILIES, cached_tiny_model  # noqa: E402

IMAGES = ROOT / "data/sample/crohme/2014/img"


def tokens(engine: _Base, images, prompt: str, size: dict | None = None) -> int:
    total = 0
    for im in images:
        prepared = im if size else engine.prepare_image(im, prompt)
        kw = {"size": size} if size else {}
        grid = engine.processor.image_processor(images=[prepared], return_tensors="pt", **kw)["image_grid_thw"][0]
        total += int(grid.prod()) // engine.merge_size ** 2
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default=os.environ.get("UNIMUMER_TINY_CACHE", str(ROOT / ".cache/tiny_models")))
    a = p.parse_args()
    paths = sorted(IMAGES.glob("*.png"))
    images = [load_image(x) for x in paths]
    prompt = TASKS["vanilla"].prompt()
    small = sum(1 for im in images if im.width * im.height < 65536)
    lines = [
        f"Visual tokens on the {len(images)} bundled CROHME 2014 test images (`data/sample/crohme/2014/img`; "
        f"{small} of them under 65,536 px), summed, per family and `--preprocessing` mode.",
        "",
        "| family (template) | official | training | first versions (min 1,024 / max 262,144 to the processor) |",
        "|---|---|---|---|",
    ]
    for name, fam in FAMILIES.items():
        model = str(cached_tiny_model(name, a.cache))
        off = tokens(_Base(model, GenerationSettings()), images, prompt)
        tr = tokens(_Base(model, GenerationSettings(preprocessing="training")), images, prompt)
        old_engine = _Base(model, GenerationSettings())
        from qwen_vl_utils import fetch_image

        old_imgs = [fetch_image({"image": im, "min_pixels": 1024, "max_pixels": 262144},
                                image_patch_size=fam.patch_size) for im in images]
        old = tokens(old_engine, old_imgs, prompt, size={"shortest_edge": 1024, "longest_edge": 262144})
        lines.append(f"| {fam.real_model} (`{fam.llamafactory_template}`) | {off:,} | {tr:,} | {old:,} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks/results/visual_tokens.md"
    out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
