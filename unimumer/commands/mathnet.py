"""``unimumer mathnet`` / ``preprocess/make_mathnet_hmer_data.py``: the official prompt-data CLI (process / prompt-only)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..data.mathnet import process, prompt_only
from ..files import check_outputs
from .common import command_parser


def _parse_bool(value: str) -> bool:
    low = str(value).lower()
    if low in {"1", "true", "yes", "y"}:
        return True
    if low in {"0", "false", "no", "n"}:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value: {value!r} (use true/false)")


_DESCRIPTION = """\
Build Uni-MuMER vanilla prompt data (LLaMA-Factory ShareGPT JSON) from captions, as the official
preprocess/make_mathnet_hmer_data.py (BFlameSwift/Uni-MuMER @ 3aea545d) does, without MathNet, KaTeX or Node:
tokenisation is pylatexenc (unimumer.latex.tokenize), cleaning is unimumer.latex.normalize (the rules behind the
official *_normalized test sets, docs/data-building.md).

Input (--input): a .json array of objects (keys --json-image-id-key / --json-caption-key) or a text file of lines
`image_id caption tokens...`. Errors (missing / non-UTF-8 / malformed input, an output folder this tool did not
create) print one `error:` line and exit 2.
"""


_PROCESS_EPILOG = """\
Files written to --output-dir (as the official tool): step1_csv.csv, step1.5_csv.csv, step2_captions.txt,
step3_tokenized.txt, step4_restored.csv, step4_restored_normalized.csv, step6_final.txt, step7_final.json,
step7_point_five_caption_only.txt, step7_point_six_tokenize_txt_only.txt, step7_point_seven_caption_json.json,
step8_post_delete.json, step9_hmer_json.json, invalid_record.json (rejected records with their type:
1.5invalid_delete, 4_tokenization_error, 5.5_normalize_error, 7.7_invalid_bracket, 7.7_empty_line,
8_post_delete) and the final copy <output-dir name><--final-name-suffix>. Printed: the official step lines and
counts. Example (the official README's):
  python preprocess/make_mathnet_hmer_data.py process --input sample_caption.txt --output-dir processed_output \\
      --image-base-path preprocess/examples/mathnet_hmer/images --image-suffix .png
"""


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``process`` / ``prompt-only`` CLI (official flags and defaults)."""
    parser = command_parser("make_mathnet_hmer_data.py", _DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    proc = sub.add_parser("process", help="clean captions (steps 1-9) and write the ShareGPT prompt file",
                          description=_DESCRIPTION, epilog=_PROCESS_EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    po = sub.add_parser("prompt-only", help="ShareGPT prompt file from the captions as they are (no cleaning)",
                        description=_DESCRIPTION + "\nWrites mid_output.json and <output-dir name>.json.",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    for p, suffix in ((proc, ".jpg"), (po, "")):
        p.add_argument("--input", required=True, help="input .txt (`image_id caption...` lines) or .json file")
        p.add_argument("--output-dir", required=True,
                       help="output folder; deleted and recreated only if this tool created it")
        p.add_argument("--image-base-path", required=True, help="folder written in front of each image path")
        p.add_argument("--image-suffix", default=suffix, help=f"suffix appended to image_id (default {suffix!r})")
        p.add_argument("--json-image-id-key", default="img_id", help="image id key of .json input (default img_id)")
        p.add_argument("--json-caption-key", default="label", help="caption key of .json input (default label)")
    proc.add_argument("--mathnet-root", default=None,
                      help="accepted for compatibility with the official tool and ignored: MathNet is not needed")
    proc.add_argument("--use-only-c", type=_parse_bool, default=True,
                      help="rewrite array column alignments (l, r) to c during cleaning (default true)")
    proc.add_argument("--remove", type=_parse_bool, default=True,
                      help="drop formulas that fail the cleaning checks (default true; false keeps them as tokenized)")
    proc.add_argument("--delete-token", action="append", default=[],
                      help="drop records with this token in step 8 (repeatable; default none)")
    proc.add_argument("--final-name-suffix", default="_0425_final.json",
                      help="suffix of the final copy <output-dir name><suffix> (default _0425_final.json)")
    proc.add_argument("--show-command-output", action="store_true",
                      help="accepted for compatibility (the official tool streams MathNet's output); no effect")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point of ``preprocess/make_mathnet_hmer_data.py``; returns the exit code (0)."""
    args = build_parser().parse_args(argv)
    check_outputs(inputs=[args.input], replaced=[args.output_dir])
    if args.command == "process":
        process(args.input, args.output_dir, args.image_base_path, args.image_suffix,
                json_image_id_key=args.json_image_id_key, json_caption_key=args.json_caption_key,
                use_only_c=args.use_only_c, remove=args.remove, delete_tokens=args.delete_token,
                final_name_suffix=args.final_name_suffix)
    else:
        prompt_only(args.input, args.output_dir, args.image_base_path, args.image_suffix,
                    json_image_id_key=args.json_image_id_key, json_caption_key=args.json_caption_key)
    return 0
