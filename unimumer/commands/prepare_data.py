"""``unimumer prepare-data`` / ``scripts/prepare_released_data.py``: import the released training data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..data.released import DEFAULT_REPO, PATH_STYLES, import_release
from ..errors import InputError
from ..files import check_outputs
from .common import command_parser

DESCRIPTION = (
    "Convert the released Uni-MuMER training data (Hugging Face dataset phxember/Uni-MuMER-Data: parquet,\n"
    "one config per dataset named parquet_<name>, images inside) into LLaMA-Factory ShareGPT JSON + image\n"
    "files + dataset_info.json entries under the OFFICIAL dataset names the train/*.yaml configs use.\n\n"
    "Name map (explicit, 26 entries): parquet_<name> -> <name> for the 26 training datasets of\n"
    "the official train/*.yaml configs (crohme_train, crohme_train_can, ..., hme100k_error_find, mathwriting_symbols).\n"
    "Configs not in the map are reported as UNMAPPED and not converted (add --map CONFIG=NAME to convert one\n"
    "under a registered name); official datasets absent from the source are listed too.\n\n"
    "Input: --source DIR (a local copy, e.g. from `huggingface-cli download --repo-type dataset\n"
    "phxember/Uni-MuMER-Data --local-dir DIR`) or --source OWNER/REPO to download it here with\n"
    "huggingface_hub (needs network; offline it stops with an error). Columns accepted: messages or\n"
    "conversations (from/value or role/content turns, or their JSON string) and images or image\n"
    "(datasets.Image structs {bytes, path}, raw bytes, or paths relative to the source).\n\n"
    "Output under --output (the data root, `data/`): <FOLDER>/train/<name>.json (ShareGPT, indent 4),\n"
    "images in <FOLDER>/train/images/ (written once even when several task datasets share them), entries in\n"
    "dataset_info.json, and released_import_report.json. Image paths are written relative to the data root\n"
    "(CROHME/train/images/..., LLaMA-Factory finds them through media_dir = dataset_dir; as the builders in\n"
    "preprocess/ write them); --path-style repo writes ./data/... relative to the current directory, absolute\n"
    "absolute paths. Existing dataset files are kept (resume) unless --overwrite.\n\n"
    "Exit status: 0 all configs converted, 1 some configs unmapped (the rest converted), 2 bad input\n"
    "(missing source, malformed row, unknown --map/--only name, download impossible).\n"
    "Then check: python scripts/check_config.py train/Uni-MuMER-train.yaml"
)


def _parse_map(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for it in items:
        cfg, sep, name = it.partition("=")
        if not sep or not cfg or not name:
            raise InputError(f"--map {it!r}: expected CONFIG=NAME, e.g. parquet_crohme_2014=crohme_2014")
        out[cfg.strip()] = name.strip()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """CLI of ``scripts/prepare_released_data.py`` (see its ``--help``). Exit 0 ok, 1 some config unmapped, 2 bad input."""
    parser = command_parser("prepare_released_data.py", DESCRIPTION)
    parser.add_argument("--source", required=True, metavar="DIR_OR_REPO",
                        help=f"released data folder, or a Hub dataset id to download (e.g. {DEFAULT_REPO})")
    parser.add_argument("--output", required=True, metavar="DIR", help="data root to write into (data/)")
    parser.add_argument("--map", action="append", default=[], metavar="CONFIG=NAME",
                        help="extra config -> registered dataset name mapping (repeatable)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="convert only these official dataset names")
    parser.add_argument("--path-style", choices=PATH_STYLES, default="dataset_dir",
                        help="image paths relative to the data root (default), the current directory, or absolute")
    parser.add_argument("--download-dir", metavar="DIR", help="where a Hub download goes (default OUTPUT/.released/)")
    parser.add_argument("--overwrite", action="store_true", help="re-convert datasets whose JSON already exists")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    ns = parser.parse_args(argv)
    check_outputs(dirs=[ns.output, ns.download_dir])
    report = import_release(ns.source, ns.output, extra_map=_parse_map(ns.map), only=ns.only,
                            path_style=ns.path_style, overwrite=ns.overwrite, download_dir=ns.download_dir,
                            progress=not ns.no_progress)
    print(report.render())
    print(f"report: {Path(ns.output) / 'released_import_report.json'}")
    return 1 if report.unmapped else 0
