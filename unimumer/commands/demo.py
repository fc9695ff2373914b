"""``unimumer demo`` / ``scripts/demo.py`` (``make demo``): the whole pipeline offline on the bundled sample."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..apps.demo import SAMPLE, DemoError, run_demo
from ..errors import InputError
from ..files import check_outputs
from ..paths import REPO_ROOT
from .common import command_parser

DESCRIPTION = (
    "Run the whole Uni-MuMER pipeline offline on CPU on the bundled real CROHME sample "
    "(data/sample/): build the five task datasets (vanilla, Tree-CoT, counting, EDL error_find / error_fix "
    "from a cross-fold error corpus), validate every train/*.yaml with LLaMA-Factory, train a tiny random "
    "Qwen2.5-VL with the paper config for a few steps, run vLLM inference on CROHME 2014 images, score the "
    "official predictions (the paper's CROHME table, byte-identical reports) with ExpRate@CDM, and write a "
    "Markdown report with a chart. The tiny model's predictions are meaningless. Outputs: --output-dir "
    "(default demo_output/; refused if it exists and was not made by the demo). Exit 0 on success, 1 when a "
    "stage fails (its log is named), 2 on bad input."
)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI of ``scripts/demo.py`` (``make demo``)."""
    p = command_parser("demo.py", DESCRIPTION, raw=False)
    p.add_argument("--output-dir", default=str(REPO_ROOT / "demo_output"), help="output folder (default demo_output/)")
    p.add_argument("--n-train", type=int, default=None, help="training images to use (default: all 48 bundled)")
    p.add_argument("--n-test", type=int, default=None, help="CROHME 2014 test images to use (default: all 48 bundled)")
    p.add_argument("--folds", type=int, default=2, help="error-corpus folds K (default 2 on CPU; 5 for real runs)")
    p.add_argument("--samples", type=int, default=2, help="candidates N per held-out image (default 2)")
    p.add_argument("--max-tokens", type=int, default=24, help="max new tokens per answer (default 24)")
    p.add_argument("--train-steps", type=int, default=4, help="training steps of the final run (default 4)")
    p.add_argument("--no-cdm", action="store_true", help="skip ExpRate@CDM on the official predictions")
    p.add_argument("--preprocessing", choices=("official", "training"), default="official",
                   help="model input of the error-corpus sampling and the inference stage, as scripts/vllm_infer.py "
                        "--preprocessing (default official: the released evaluation's requests; training: "
                        "LLaMA-Factory's fine-tuning input; docs/inference.md)")
    a = p.parse_args(argv)
    check_outputs(inputs=[SAMPLE], replaced=[a.output_dir])
    for flag in ("n_train", "n_test"):
        v = getattr(a, flag)
        if v is not None and v < 1:
            raise InputError(f"--{flag.replace('_', '-')} must be >= 1")
    from ..edl.corpus import StageError

    try:
        run_demo(a.output_dir, n_train=a.n_train, n_test=a.n_test, folds=a.folds, samples=a.samples,
                 max_tokens=a.max_tokens, train_steps=a.train_steps, cdm=not a.no_cdm,
                 preprocessing=a.preprocessing)
    except (DemoError, StageError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    return 0
