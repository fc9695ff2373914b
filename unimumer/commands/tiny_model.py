"""``unimumer tiny-model`` / ``scripts/make_tiny_model.py``: a tiny offline Qwen VLM checkpoint."""

from __future__ import annotations

from ..families import (  # noqa: F401  (the family's tokenizer assets, used by tests)
    QWEN2_5_ADDED_TOKENS,
    QWEN3_ADDED_TOKENS,
    QWEN_SPECIAL_TOKENS,
    ModelFamily,
    tiny_families,
)
from ..files import check_outputs
from ..testing.tiny_models import FAMILIES, build_tiny_model
from .common import command_parser

DESCRIPTION = (
    "Build a tiny (a few MB) randomly initialised Qwen vision-language checkpoint, fully offline, that\n"
    "transformers (AutoProcessor / AutoModelForImageTextToText), LLaMA-Factory and vLLM load exactly like\n"
    "the real model of the family. For tests, demos and CI on machines without a model hub.\n\n"
    "Families (LLaMA-Factory template, real model it stands in for):\n"
    + "".join(f"  {f.name:<11} {f.llamafactory_template:<17} {f.real_model}\n" for f in FAMILIES.values())
)

EPILOG = (
    "Output folder: config.json, generation_config.json (eos = <|im_end|>, <|endoftext|>), model.safetensors,\n"
    "tokenizer.json / tokenizer_config.json / chat_template.jinja (byte-level BPE trained offline on LaTeX and\n"
    "the Uni-MuMER prompts, the family's real special tokens and chat template), processor_config.json and\n"
    "tiny_model.json (family, seed, template). Same --seed -> byte-identical files.\n"
    "Errors: unknown family or an --output that is an existing file -> 'error: ...', exit 2.\n"
    "Source: the released checkpoints' layout (Qwen2.5-VL-3B-Instruct, Qwen3-VL-2B-Instruct, Qwen3.5-2B)."
)


def main(argv=None) -> int:
    """``scripts/make_tiny_model.py``: build a tiny offline checkpoint (see :func:`build_tiny_model`)."""

    p = command_parser("make_tiny_model.py", DESCRIPTION, epilog=EPILOG)
    p.add_argument("--family", required=True, choices=sorted(FAMILIES), help="model family to imitate")
    p.add_argument("--output", required=True, help="folder to write (replaced atomically if it exists)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the weights (default 0)")
    args = p.parse_args(argv)
    check_outputs(replaced=[args.output])
    out = build_tiny_model(args.family, args.output, seed=args.seed)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"{args.family} tiny model written to {out} ({size / 1e6:.1f} MB)")
    return 0
