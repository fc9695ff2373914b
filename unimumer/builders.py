"""Training- and test-data builders (facade): every name of the modules below, importable from here as before.

The code lives in :mod:`unimumer.records` (record conversion: vanilla → Tree-CoT / counting records, LaTeX
normalisation of records), :mod:`unimumer.serialisation` (streaming JSON read / fast ShareGPT write),
:mod:`unimumer.prompt_files` (vanilla prompt files and image conversion), :mod:`unimumer.training_sets`
(``NAME.json`` / ``_tree`` / ``_can`` training sets) and :mod:`unimumer.builder_cli` (the four CLIs).

Sources: paper Sec. 3 (the vanilla / Tree-CoT / symbol-counting tasks) and Sec. 4.1 (data), the official
``preprocess/make_unimumer_tree_data.py`` (CLI, output naming, skip behaviour), its examples,
the official ``data.zip`` layout and ``*_normalized`` test sets.

Library entry points (other modules and engineers call these):

- :func:`build_prompts_from_crohme` — CROHME-style folder (``caption.txt`` + ``img/``, white on black) → vanilla
  ShareGPT JSON with black-on-white images in the official layout ``<data_root>/<dataset>/<split>/images/``;
- :func:`build_prompts_from_latex_json` — JSON / JSONL of ``{"image", "latex"}`` with raw LaTeX (tokenized and
  normalized on the way, invalid records dropped and counted) → the same;
- :func:`convert_file` — one ShareGPT file → its ``_tree`` / ``_can`` file (official tool semantics);
- :func:`normalize_records` / :func:`normalize_file` — normalization of a prediction or ShareGPT file;
- :func:`build_training_set` — vanilla ShareGPT → ``NAME.json``, ``NAME_tree.json``, ``NAME_can.json`` registered
  in ``dataset_info.json``, streaming, on all cores.

Image paths (``path_style``): LLaMA-Factory 0.9.5 (``llamafactory/data/converter.py``) opens
``os.path.join(media_dir, path)`` when that file exists (``media_dir`` defaults to ``dataset_dir``), else the path as
given (relative to the working directory). ``"dataset_dir"`` paths are relative to ``data_root`` (the folder that
holds ``dataset_info.json``; ``CROHME/train/images/x.png``) and resolve through ``media_dir`` from any working
directory; ``"repo"`` paths are the official ``./data/CROHME/2014/images/x.jpg`` form, relative to the parent of
``data_root`` (the repository root for ``data/``), which is what vLLM inference and the official configs (run from
the repository root) use. Training splits default to ``"dataset_dir"``, test splits to ``"repo"``.
"""

from __future__ import annotations

from .builder_cli import (  # noqa: F401
    iter_input_files,
    main_build,
    main_normalize,
    main_prompts,
    main_tree,
    resolve_output_file,
)
from .prompt_files import (  # noqa: F401
    IMAGE_SUFFIXES,
    _convert_image,
    _find_image,
    _image_path,
    _run_parallel,
    _write_prompts,
    build_prompts_from_crohme,
    build_prompts_from_latex_json,
    default_prompt_path,
    read_captions,
)
from .records import (  # noqa: F401
    _MAKERS,
    TREE_TASKS,
    RecordError,
    _copy_json,
    _field_location,
    convert_file,
    convert_record,
    make_can_record,
    make_tree_record,
    make_vanilla_record,
    normalize_file,
    normalize_records,
    record_latex,
)
from .serialisation import (  # noqa: F401
    _fast_sharegpt,
    _serialise,
    iter_records,
)
from .training_sets import (  # noqa: F401
    _build_chunk,
    _chunks,
    _find_dataset_info,
    _iter_raw_or_records,
    _warn_unresolved_images,
    build_training_set,
)

__all__ = [
    "TREE_TASKS",
    "build_prompts_from_crohme",
    "build_prompts_from_latex_json",
    "build_training_set",
    "convert_file",
    "convert_record",
    "default_prompt_path",
    "iter_records",
    "main_build",
    "main_normalize",
    "main_prompts",
    "main_tree",
    "make_can_record",
    "make_tree_record",
    "normalize_file",
    "normalize_records",
    "read_captions",
]
