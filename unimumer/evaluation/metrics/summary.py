"""``scripts/summarize_results.py``: one Markdown table of every scored test split next to the paper's numbers.

Finds prediction files under a data root (layout of the official ``eval/eval_all.sh``:
``data/<DATASET>/results[_<suffix>]/<stem>_pred.json``) or takes explicit files (the released ``paper_final/``
files are named ``crohme_2014.json``), scores each with the official metrics (:func:`unimumer.evaluation.metrics.evaluate`),
reads ExpRate@CDM from ``<stem>_cdm.json`` beside a prediction file when present, and compares ExpRate with the
released numbers of the official README (:mod:`unimumer.evaluation.metrics.paper`). Optionally draws a bar chart of
ExpRate per split against the paper (matplotlib, Agg backend, imported lazily).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError
from ...files import atomic_write_bytes, read_json
from ...layout import CDM_SUFFIX, find_predictions, stem_of
from .calculator import evaluate_file
from .paper import DEFAULT_MODEL, MODELS, paper_exprate, resolve_model, split_info

DASH = "—"


@dataclass
class Row:
    """One scored prediction file of the summary.

    Attributes: ``path`` (the prediction file), ``dataset`` (data folder, e.g. ``CROHME``), ``run`` (results folder,
    e.g. ``results_7b``), ``stem`` (split stem), ``metrics`` (official result dict), ``exprate_cdm`` (percent or
    ``None``), ``paper`` (released ExpRate or ``None``), ``comparable`` (whether the paper used this split; ``None``
    when the release does not say), ``note``, ``cdm_f1`` (mean CDM F1 in percent, beside ExpRate@CDM, or ``None``),
    ``cdm_toolkit`` (the CDM toolkit version of ExpRate@CDM, ``"2025-09"`` / ``"2025-03"``, :data:`UNRECORDED` for a
    ``<stem>_cdm.json`` that does not record it, ``None`` without CDM).
    """

    path: Path
    dataset: str
    run: str
    stem: str
    metrics: dict
    exprate_cdm: float | None
    paper: float | None
    comparable: bool | None
    note: str
    order: int
    cdm_f1: float | None = None
    cdm_toolkit: str | None = None

    @property
    def delta(self) -> float | None:
        """ExpRate minus the paper number (percentage points), ``None`` when not comparable."""
        if self.paper is None or self.comparable is False:
            return None
        return round(self.metrics["exact_match_rate"] - self.paper, 2) + 0.0  # + 0.0: no "-0.00"


def find_prediction_files(paths: Sequence[str | os.PathLike]) -> list[tuple[Path, Path | None]]:
    """``(prediction file, data root or None)`` for every input: a directory gives all ``*_pred.json`` below it
    (recursively, sorted), a file is taken as given.

    Raises :class:`InputError` for a missing path or when nothing is found.
    """
    return [(f, Path(raw) if Path(raw).is_dir() else None)
            for raw in paths for f in find_predictions(raw, recursive=True)]


def read_cdm(path: Path) -> float | None:
    """``exprate_cdm`` from a ``<stem>_cdm.json`` file (written by ``eval_metrics_calculator.py --cdm``), or
    ``None`` if the file does not exist. Raises :class:`InputError` when it exists but holds no numeric
    ``exprate_cdm``."""
    if not path.is_file():
        return None
    data = read_json(path)
    value = data.get("exprate_cdm") if isinstance(data, dict) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InputError(f"{path}: expected a JSON object with a numeric 'exprate_cdm'")
    return float(value)


#: the toolkit "version" of a ``<stem>_cdm.json`` written before versions were recorded
UNRECORDED = "toolkit not recorded"


def read_cdm_toolkit(path: Path) -> str | None:
    """The CDM toolkit version recorded in a ``<stem>_cdm.json`` (``settings.toolkit.version``), :data:`UNRECORDED`
    when it has none, ``None`` when the file does not exist."""
    if not path.is_file():
        return None
    from .report import cdm_toolkit_of

    return cdm_toolkit_of(read_json(path)) or UNRECORDED


def read_cdm_f1(path: Path) -> float | None:
    """Mean CDM F1 (percent) of a ``<stem>_cdm.json`` file from its per-sample ``f1`` values
    (:func:`unimumer.evaluation.metrics.report.cdm_f1_mean`), or ``None`` when the file does not exist or has no samples."""
    if not path.is_file():
        return None
    from .report import cdm_f1_mean

    return cdm_f1_mean(read_json(path))


def collect_rows(paths: Sequence[str | os.PathLike], *, model: str = DEFAULT_MODEL,
                 gt_key: str = "gt", pred_key: str = "pred", cdm_toolkit: str | None = None) -> list[Row]:
    """Score every prediction file found in ``paths`` and attach the paper number of ``model``.

    With ``cdm_toolkit``, ExpRate@CDM is kept only from ``<stem>_cdm.json`` files of that toolkit version (others
    count as absent).
    Returns rows sorted by results folder, then the paper's table order (unknown splits last, by name).
    Raises :class:`InputError` on a bad prediction / CDM file or an unknown model.
    """
    model = resolve_model(model)
    from tqdm import tqdm

    files = find_prediction_files(paths)
    rows = []
    for path, root in tqdm(files, desc="scoring", unit="file", disable=len(files) < 2 or None):
        stem = stem_of(path)
        info = split_info(stem)
        if info is not None:
            dataset = info.dataset
        elif root is not None and len(path.relative_to(root).parts) >= 3:
            dataset = path.relative_to(root).parts[-3]
        else:
            dataset = path.parent.name
        cdm_path = path.parent / f"{stem}{CDM_SUFFIX}"
        toolkit = read_cdm_toolkit(cdm_path)
        keep_cdm = toolkit is not None and cdm_toolkit in (None, toolkit)
        rows.append(Row(
            path=path,
            dataset=dataset,
            run=path.parent.name,
            stem=stem,
            metrics=evaluate_file(path, gt_key=gt_key, pred_key=pred_key),
            exprate_cdm=read_cdm(cdm_path) if keep_cdm else None,
            paper=paper_exprate(stem, model),
            comparable=info.protocol if info else None,
            note=info.note if info else "not an official test split",
            order=info.order if info else 1000,
            cdm_f1=read_cdm_f1(cdm_path) if keep_cdm else None,
            cdm_toolkit=toolkit if keep_cdm else None,
        ))
    rows.sort(key=lambda r: (r.run, r.order, r.stem, str(r.path)))
    return rows


def _f(value: float | None, fmt: str = ".2f") -> str:
    return DASH if value is None else format(value, fmt)


def markdown_table(rows: Sequence[Row], model: str = DEFAULT_MODEL) -> str:
    """The summary as Markdown: a heading, a line naming the paper column's source, and the table.

    Columns: Dataset, Split, Run, Records, ExpRate, ≤1, ≤2, ≤3, BLEU-4, [ExpRate@CDM and CDM F1 (mean per-sample
    F1, percent) when any row has them, headed by the CDM toolkit version, e.g. ``ExpRate@CDM (2025-03)``, or,
    when the rows come from several versions, each cell followed by its version],
    Paper <model>, Δ ExpRate (percentage points), Note. Values are the official 4-decimal metrics shown with 2
    decimals like the paper; Δ is left empty (—) where the paper measured a sibling split (see Note).
    """
    model = resolve_model(model)
    has_cdm = any(r.exprate_cdm is not None for r in rows)
    toolkits = sorted({r.cdm_toolkit for r in rows if r.exprate_cdm is not None and r.cdm_toolkit})
    head = ["Dataset", "Split", "Run", "Records", "ExpRate", "≤1", "≤2", "≤3", "BLEU-4"]
    if has_cdm:
        version = "" if toolkits in ([], [UNRECORDED]) else f" ({toolkits[0]})" if len(toolkits) == 1 else " (toolkit)"
        head += [f"ExpRate@CDM{version}", f"CDM F1{version}"]
    head += [f"Paper {model}", "Δ ExpRate", "Note"]
    align = ["---", "---", "---"] + ["---:"] * (len(head) - 4) + ["---"]
    lines = [
        "# Uni-MuMER results vs paper",
        "",
        f"Paper column: {MODELS[model]}, released ExpRate (%) from the official README (vLLM, temperature 0.2, "
        "max_tokens 2048). ExpRate = token sequence identical to the ground truth; ≤k = token edit distance ≤ k; "
        "BLEU-4 × 100 (official calculator). Δ = ExpRate − paper, in points.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(align) + "|",
    ]
    for r in rows:
        m = r.metrics
        cells = [r.dataset, f"`{r.stem}`", r.run, f"{m['total_samples']:,}", _f(m["exact_match_rate"]),
                 _f(m["error_le_1_rate"]), _f(m["error_le_2_rate"]), _f(m["error_le_3_rate"]), _f(m["bleu4_score"])]
        if has_cdm:
            tail = f" ({r.cdm_toolkit})" if len(toolkits) > 1 and r.exprate_cdm is not None else ""
            cells += [_f(r.exprate_cdm) + tail, _f(r.cdm_f1) + (tail if r.cdm_f1 is not None else "")]
        cells += [_f(r.paper), _f(r.delta, "+.2f"), r.note]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def render_exprate_png(rows: Sequence[Row], model: str = DEFAULT_MODEL) -> bytes:
    """Grouped bar chart of ExpRate per split (one bar per results folder, one hatched bar for the paper) as PNG
    bytes. matplotlib is imported here, with the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = resolve_model(model)
    stems: list[str] = []
    for r in rows:
        if r.stem not in stems:
            stems.append(r.stem)
    runs: list[str] = []
    for r in rows:
        if r.run not in runs:
            runs.append(r.run)
    value = {(r.run, r.stem): r.metrics["exact_match_rate"] for r in rows}
    # no paper bar where the paper measured a sibling split (CROHME 2023 / HME100K raw splits)
    paper = {r.stem: (r.paper if r.comparable is not False else None) for r in rows}
    n_bars = len(runs) + 1
    width = 0.8 / n_bars
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 + 0.9 * len(stems) * n_bars * 0.6), 4.5))
    xs = range(len(stems))
    for j, run in enumerate(runs):
        ys = [value.get((run, s), math.nan) for s in stems]
        ax.bar([x - 0.4 + width * (j + 0.5) for x in xs], ys, width, label=run)
    ys = [paper[s] if paper[s] is not None else math.nan for s in stems]
    ax.bar([x - 0.4 + width * (len(runs) + 0.5) for x in xs], ys, width, label=f"paper ({model})",
           color="lightgray", edgecolor="black", hatch="//")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(stems, rotation=30, ha="right")
    ax.set_ylabel("ExpRate (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Uni-MuMER ExpRate per test split vs paper")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def plot_exprate(rows: Sequence[Row], out: str | os.PathLike, model: str = DEFAULT_MODEL) -> Path:
    """Write :func:`render_exprate_png` to ``out`` atomically. Returns the path; raises :class:`InputError` if it
    cannot be written."""
    path = Path(out)
    try:
        atomic_write_bytes(path, render_exprate_png(rows, model))
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path
