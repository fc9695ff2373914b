"""The official MathNet prompt-data pipeline (``preprocess/make_mathnet_hmer_data.py``), without MathNet.

Same subcommands, flags, step files, ``invalid_record.json`` reject types, file names and counts as the official
tool (BFlameSwift/Uni-MuMER @ 3aea545d); the KaTeX steps use :func:`unimumer.latex.tokenize.tokenize_latex` and
:func:`unimumer.latex.normalize.try_normalize`. An existing ``--output-dir`` is deleted only when this tool made it
(marker file); otherwise :class:`InputError`. Files are written atomically. Details: docs/data-building.md.
"""

from __future__ import annotations

import csv
import io
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..files import (
    atomic_write_text,
    dump_json,
    read_caption_lines,
    read_json_list,
    sharegpt_record,
)
from ..tasks import TASKS

__all__ = [
    "INVALID_SUBSTRINGS",
    "MARKER",
    "check_brackets",
    "is_invalid_caption",
    "load_caption_records",
    "process",
    "prompt_only",
]

#: Official step-1.5 filter: a caption that, with all whitespace removed, contains one of these is dropped.
FIRST_DELETED = ("{}", "\\underline{\\quad}", "\\widehat{\\}", "\\scriptstyle{k-1}\\choose{r}", "\\cfrac{\\cfrac{\\cfrac{")
#: The official list of CJK characters / marks (HME100K word problems) plus ``√``.
CJK_INVALID = tuple("、。丙个为乙人代以倍元入公分即原可周和因大天妈将小岁年式得或所把数方时明是最本次求法满然甲的种积第答组能自行袋解该负足面页项√")
INVALID_SUBSTRINGS = FIRST_DELETED + CJK_INVALID
#: Marker file: the output folder was created by this tool and may be deleted by it.
MARKER = ".unimumer-mathnet-output"

_PAIRS = {")": "(", "]": "[", "}": "{"}


def check_brackets(line: str) -> bool:
    """Official bracket check: ``( [ {`` / ``) ] }`` properly nested over the whitespace tokens of ``line``."""
    stack: list[str] = []
    for tok in line.split():
        if tok in ("(", "[", "{"):
            stack.append(tok)
        elif tok in _PAIRS:
            if not stack or stack.pop() != _PAIRS[tok]:
                return False
    return not stack


def is_invalid_caption(caption: str) -> bool:
    """Official step 1.5: whitespace-free ``caption`` contains one of :data:`INVALID_SUBSTRINGS`."""
    compact = "".join(caption.split())
    return any(item in compact for item in INVALID_SUBSTRINGS)


def load_caption_records(path: str | Path, id_key: str = "img_id", caption_key: str = "label") -> list[tuple[str, str]]:
    """``[(caption, image_id)]`` of a ``.json`` array of objects or a text file of ``image_id caption tokens…`` lines.

    As the official ``load_records``: JSON values are converted with ``str``; text lines are stripped, blank lines
    skipped and the caption is the rest of the line re-joined with single spaces (it may be empty: step 4 rejects
    it). Raises :class:`InputError` (one line naming the file and the record / line) for a missing, non-UTF-8 or
    malformed file, or a JSON record that is not an object with both keys.
    """
    p = Path(path)
    if p.suffix == ".json":
        out = []
        for i, item in enumerate(read_json_list(p, allow_empty=True)):
            if not isinstance(item, dict) or id_key not in item or caption_key not in item:
                raise InputError(f"{p}: record {i} is not an object with {id_key!r} and {caption_key!r}")
            out.append((str(item[caption_key]), str(item[id_key])))
        return out
    return [(caption, img_id) for _lineno, img_id, caption in read_caption_lines(p)]


def _csv_text(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> str:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)  # default dialect, as the official files: "\r\n" line ends, minimal quoting
    if header:
        w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _lines(items: Sequence[str]) -> str:
    return "".join(f"{s}\n" for s in items)


def _image_path(base: str, image_id: str, suffix: str) -> str:
    return str(Path(base) / f"{image_id}{suffix}")


def _prepare_output_dir(output_dir: Path) -> None:
    """Delete and recreate ``output_dir`` like the official tool, but only if this tool created it."""
    if output_dir.exists():
        if not output_dir.is_dir():
            raise InputError(f"{output_dir}: --output-dir exists and is not a folder")
        if (output_dir / MARKER).is_file():
            shutil.rmtree(output_dir)
        elif any(output_dir.iterdir()):
            raise InputError(
                f"{output_dir}: --output-dir exists, is not empty and was not created by this tool; "
                "refusing to delete it (choose a new folder)"
            )
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / MARKER).write_text("created by preprocess/make_mathnet_hmer_data.py; deleted on the next run\n")
    except OSError as exc:
        raise InputError(f"{output_dir}: cannot create --output-dir ({exc.strerror or exc})") from None


def _clean_caption(caption: str, use_only_c: bool, remove: bool) -> str | None:
    """Step 5: the normalised caption, ``None`` when the record is dropped (only with ``remove``).

    ``remove=False`` (official ``--remove false``: the removal checks are skipped) keeps formulas with a
    ``delete_chars`` / CJK token (normalised) and a formula the cleaner cannot rewrite (as tokenized).
    """
    from ..latex.normalize import LatexDropped, normalize_tokens, try_normalize

    if remove:
        return try_normalize(caption, use_only_c=use_only_c)[0]
    try:
        return " ".join(normalize_tokens(caption.split(), use_only_c=use_only_c, token_filters=False))
    except LatexDropped:
        return caption


def _katex_normalize(caption: str, use_only_c: bool) -> str:
    """Step 7.6: re-tokenise and re-normalise; ``""`` when that fails (KaTeX writes an empty line on errors).

    Like KaTeX, this checks structure only: the token filters (``delete_chars``, CJK) are not applied.
    """
    from ..latex.normalize import LatexDropped, normalize_tokens
    from ..latex.tokenize import LatexTokenizeError, tokenize_tokens

    try:
        return " ".join(normalize_tokens(tokenize_tokens(caption), use_only_c=use_only_c, token_filters=False))
    except (LatexTokenizeError, LatexDropped):
        return ""


def _tokenize(caption: str) -> str:
    from ..latex.tokenize import LatexTokenizeError, tokenize_latex

    try:
        return tokenize_latex(caption)
    except LatexTokenizeError:
        return ""


@dataclass
class _Run:
    """One ``process`` run: where step files go, how lines are printed, and the rejected records."""

    odir: Path
    image_base_path: str
    image_suffix: str
    out: object
    invalid: list = field(default_factory=list)

    def say(self, *args) -> None:
        print(*args, file=self.out)

    def write(self, name: str, text: str, step: str) -> None:
        atomic_write_text(self.odir / name, text)
        self.say(f"{step} done")

    def reject(self, image_id: str, caption: str, kind: str) -> None:
        self.invalid.append({"image_id": image_id, "caption": caption,
                             "image_path": _image_path(self.image_base_path, image_id, self.image_suffix),
                             "type": kind})


def _steps_1_to_4(run: _Run, records: list) -> list:
    """Filter invalid captions, tokenize, keep balanced non-empty ones: ``[(tokens, image_id)]``."""
    run.say("start processing")
    run.say(f"original caption lines count: {len(records)}")
    run.write("step1_csv.csv", _csv_text(records, ("caption", "image_id")), "step1")
    kept = []
    for cap, iid in records:
        if is_invalid_caption(cap):
            run.reject(iid, cap, "1.5invalid_delete")
        else:
            kept.append((cap, iid))
    run.say(f"one_point_five_filter_invalid_caption: {len(records) - len(kept)}")
    run.write("step1.5_csv.csv", _csv_text(kept, ("caption", "image_id")), "step1.5")
    run.write("step2_captions.txt", _lines([c for c, _ in kept]), "step2")

    from tqdm import tqdm

    tokenized = [_tokenize(c) for c, _ in tqdm(kept, desc="step3 tokenize", unit="rec", disable=None)]
    run.write("step3_tokenized.txt", _lines(tokenized), "step3")
    restored = []
    for tok, (cap, iid) in zip(tokenized, kept, strict=True):
        if not check_brackets(tok) or tok == "":
            run.reject(iid, cap, "4_tokenization_error")
        else:
            restored.append((tok, iid))
    run.write("step4_restored.csv", _csv_text(restored), "step4")
    return restored


def _step_5(run: _Run, restored: list, use_only_c: bool, remove: bool) -> list:
    """Normalize (clean) every caption: ``[(caption, image_id)]``; prints the official counts."""
    from tqdm import tqdm

    normalized, dropped_at = [], []
    for k, (tok, iid) in enumerate(tqdm(restored, desc="step5 normalize", unit="rec", disable=None)):
        clean = _clean_caption(tok, use_only_c, remove)
        if clean is None:
            dropped_at.append(k)
            run.reject(iid, tok, "5.5_normalize_error")
        else:
            normalized.append((clean, iid))
    run.write("step4_restored_normalized.csv", _csv_text(normalized), "step5")
    # Official count: the dropped records met before the last kept one (its two-pointer walk stops there).
    dropped = set(dropped_at)
    last_kept = max((k for k in range(len(restored)) if k not in dropped), default=-1)
    run.say(f"catch_cnt: {sum(1 for k in dropped_at if k < last_kept)}")
    run.say(len(restored) - len(normalized))
    return normalized


def _steps_6_to_7(run: _Run, normalized: list, use_only_c: bool) -> list:
    """Step-7 records ``{image_path, caption, image_id}`` whose re-normalized caption is balanced and non-empty."""
    run.write("step6_final.txt", _lines([f"{iid} {cap}" for cap, iid in normalized]), "step6")
    step7 = [{"image_path": _image_path(run.image_base_path, iid, run.image_suffix),
              "caption": " ".join(cap.split()), "image_id": iid} for cap, iid in normalized]
    run.write("step7_final.json", dump_json(step7), "step7")
    run.write("step7_point_five_caption_only.txt", _lines([r["caption"] for r in step7]), "step7.5")
    recheck = [_katex_normalize(r["caption"], use_only_c) for r in step7]
    run.write("step7_point_six_tokenize_txt_only.txt", _lines(recheck), "step7.6")
    validated, empty = [], 0
    for line, rec in zip(recheck, step7, strict=True):
        if not check_brackets(line):
            run.reject(rec["image_id"], rec["caption"], "7.7_invalid_bracket")
        elif line.strip() == "":
            empty += 1
            run.reject(rec["image_id"], rec["caption"], "7.7_empty_line")
        else:
            validated.append(rec)
    run.say(f"empty_cnt: {empty}")
    run.write("step7_point_seven_caption_json.json", dump_json(validated), "step7.7")
    return validated


def process(
    input_path: str | Path,
    output_dir: str | Path,
    image_base_path: str,
    image_suffix: str = ".jpg",
    *,
    json_image_id_key: str = "img_id",
    json_caption_key: str = "label",
    use_only_c: bool = True,
    remove: bool = True,
    delete_tokens: Sequence[str] = (),
    final_name_suffix: str = "_0425_final.json",
    out=None,
) -> dict:
    """The official ``process`` pipeline (steps 1–9 of the official script).

    Writes the step files, ``invalid_record.json`` (list of ``{image_id, caption, image_path, type}``, types
    ``1.5invalid_delete``, ``4_tokenization_error``, ``5.5_normalize_error``, ``7.7_invalid_bracket``,
    ``7.7_empty_line``, ``8_post_delete``) and ``<output-dir name><final_name_suffix>`` (ShareGPT, vanilla prompt,
    indent 4, no trailing newline) into ``output_dir``; prints the official progress lines and counts to ``out``
    (stdout). Returns ``{"final": path, "kept": n, "invalid": Counter}``. Raises :class:`InputError` for bad input.
    """
    records = load_caption_records(input_path, json_image_id_key, json_caption_key)
    odir = Path(output_dir).resolve()
    _prepare_output_dir(odir)
    run = _Run(odir, image_base_path, image_suffix, out or sys.stdout)
    restored = _steps_1_to_4(run, records)
    validated = _steps_6_to_7(run, _step_5(run, restored, use_only_c, remove), use_only_c)
    deleting = set(delete_tokens)
    final = []
    for rec in validated:
        if deleting and any(t in deleting for t in rec["caption"].split()):
            run.reject(rec["image_id"], rec["caption"], "8_post_delete")
        else:
            final.append(rec)
    run.write("step8_post_delete.json", dump_json(final), "step8")
    prompt = TASKS["vanilla"].prompt()
    hmer = dump_json([sharegpt_record(r["image_path"], prompt, r["caption"]) for r in final])
    run.write("step9_hmer_json.json", hmer, "step9")
    run.say("all done")
    run.say(f"final caption lines count: {len(final)}")
    run.say("loss caption lines count: ", len(records) - len(final))
    atomic_write_text(odir / "invalid_record.json", dump_json(run.invalid))
    counts = Counter(r["type"] for r in run.invalid)
    run.say(f"invalid data count: {len(run.invalid)}")
    for kind, n in counts.items():
        run.say(f"{kind}: {n}")
    final_path = odir / (odir.name + final_name_suffix)
    atomic_write_text(final_path, hmer)
    return {"final": final_path, "kept": len(final), "invalid": counts}


def prompt_only(
    input_path: str | Path,
    output_dir: str | Path,
    image_base_path: str,
    image_suffix: str = "",
    *,
    json_image_id_key: str = "img_id",
    json_caption_key: str = "label",
    out=None,
) -> Path:
    """The official ``prompt-only`` subcommand: no cleaning.

    Writes ``mid_output.json`` (``[{image_path, caption, image_id}]``) and ``<output-dir name>.json`` (ShareGPT,
    vanilla prompt), both indent 4 without a trailing newline; prints ``prompt-only output: <path>``. Returns the
    ShareGPT path. Raises :class:`InputError` for bad input.
    """
    records = load_caption_records(input_path, json_image_id_key, json_caption_key)
    odir = Path(output_dir).resolve()
    _prepare_output_dir(odir)
    mid = [{"image_path": _image_path(image_base_path, iid, image_suffix), "caption": cap, "image_id": iid}
           for cap, iid in records]
    atomic_write_text(odir / "mid_output.json", dump_json(mid))
    prompt = TASKS["vanilla"].prompt()
    final = odir / f"{odir.name}.json"
    atomic_write_text(final, dump_json([sharegpt_record(r["image_path"], prompt, r["caption"]) for r in mid]))
    print(f"prompt-only output: {final}", file=out or sys.stdout)
    return final
