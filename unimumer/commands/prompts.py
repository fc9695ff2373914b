"""``unimumer prompts`` / ``preprocess/make_hmer_prompts.py``: vanilla ShareGPT prompt files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..data.prompt_files import build_prompts_from_crohme, build_prompts_from_latex_json, default_prompt_path
from ..files import check_outputs
from ..paths import DATA_DIR
from .common import command_parser

DESCRIPTION = (
    "Build a vanilla ShareGPT prompt file (training data or a test set for inference) from real data\n"
    "(paper Sec. 4.1; layout of the official data.zip):\n"
    "  (a) --crohme-dir: a CROHME-style folder, caption.txt ('img_id<TAB>tokenized LaTeX') + img/*.png\n"
    "      (white on black, as packaged for CoMER/PosFormer; also MNE);\n"
    "  (b) --latex-json: a JSON array / JSONL of {\"image\": path, \"latex\": raw LaTeX} (MathWriting /\n"
    "      Im2LaTeXv2 style), tokenized with pylatexenc and normalized; invalid records dropped, counted.\n"
    "Images are written black strokes on white to DATA_ROOT/DATASET/SPLIT/images/<img_id>.<fmt>\n"
    "(existing images are kept, so a rerun resumes). Image paths in the JSON: 'repo' style\n"
    "./data/CROHME/2014/images/<img_id>.jpg (relative to the parent of DATA_ROOT = repository root; the\n"
    "official prompt files, used by inference) or 'dataset_dir' style CROHME/train/images/<img_id>.png\n"
    "(relative to DATA_ROOT, resolved by LLaMA-Factory through media_dir = dataset_dir). Default: repo for\n"
    "test splits, dataset_dir for 'train'.\n"
    "Example: make_hmer_prompts.py --crohme-dir data/sample/crohme/2014 --split 2014 \\\n"
    "             --out data/CROHME/prompts/crohme_2014.json\n"
    "Prints the counts (records, written, skipped by reason). Errors: 'error: ...', exit code 2."
)


def main(argv: Sequence[str] | None = None) -> int:
    """``preprocess/make_hmer_prompts.py``."""
    parser = command_parser("make_hmer_prompts.py", DESCRIPTION)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--crohme-dir", help="folder with caption.txt and img/ (CROHME / MNE layout)")
    src.add_argument("--latex-json", help="JSON array or JSONL of {image, latex} records (raw LaTeX)")
    parser.add_argument("--data-root", default=str(DATA_DIR), help="dataset root (default: <repo>/data)")
    parser.add_argument("--dataset", help="dataset folder name (default: CROHME, or MathWriting for --latex-json)")
    parser.add_argument("--split", default="train", help="split name: train, 2014, 2016, 2019, N1 … (default: train)")
    parser.add_argument("--out", help="output JSON (default: DATA_ROOT/DATASET/train/<dataset>_train.json for "
                        "train, DATA_ROOT/DATASET/prompts/<dataset>_<split>.json for test splits)")
    parser.add_argument("--image-format", choices=("png", "jpg"),
                        help="written image format (default: png for train, jpg for test splits as officially)")
    parser.add_argument("--path-style", choices=("repo", "dataset_dir"), help="image path style (see above)")
    parser.add_argument("--repo-root", help="base of 'repo' style paths (default: parent of DATA_ROOT)")
    parser.add_argument("--limit", type=int, help="first N records only")
    parser.add_argument("--workers", type=int, help="image conversion processes (default: all cores)")
    parser.add_argument("--no-normalize", action="store_true", help="--latex-json: tokenize only, do not normalize")
    args = parser.parse_args(argv)
    fmt = args.image_format or ("png" if args.split == "train" else "jpg")
    dataset = args.dataset or ("CROHME" if args.crohme_dir else "MathWriting")
    source = Path(args.crohme_dir) / "caption.txt" if args.crohme_dir else args.latex_json
    check_outputs(inputs=[source], outputs=[args.out or default_prompt_path(args.data_root, dataset, args.split)],
                  dirs=[Path(args.data_root) / dataset / args.split / "images"])
    common = dict(
        split=args.split, limit=args.limit, image_format=fmt, out_json=args.out, path_style=args.path_style,
        repo_root=args.repo_root, workers=args.workers,
    )
    if args.crohme_dir:
        out, stats = build_prompts_from_crohme(args.crohme_dir, args.data_root, dataset, **common)
    else:
        out, stats = build_prompts_from_latex_json(
            args.latex_json, args.data_root, dataset, normalize=not args.no_normalize, **common
        )
    print(f"{out} | " + " ".join(f"{k}={v}" for k, v in stats.items()))
    return 0
