"""Batch rendering of colour-coded expressions with pdflatex + pdftoppm, and per-token boxes by exact colour.

Input: colour-coded math sources (:func:`unimumer.evaluation.cdm.latex.colorize`). Output: one :data:`RenderResult` per
source, ``{"ok": bool, "error": str | None, "size": [width, height], "boxes": [[k, x0, y0, x1, y1], ...]}`` with
pixel boxes of colour index ``k`` at :data:`DPI`; a colour without pixels has no box. As in the official toolkit
the page is cropped to its ink with :data:`CROP_PAD` px of padding (``size`` is the cropped size) and a box is the
extent of its colour ± 1 px in that frame. Batching, error attribution and time limits: docs/cdm.md, "Rendering".

Raises :class:`~unimumer.errors.InputError` when ``pdflatex`` or ``pdftoppm`` is missing (``make sysdeps``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ...errors import InputError

DPI = 200
#: bump when rendering or box extraction changes: part of every cache key.
RENDER_VERSION = "cdm-render-2"
#: padding around the ink of the cropped page, in pixels (official toolkit: 8)
CROP_PAD = 8
PREAMBLE = (
    r"\documentclass[12pt]{article}",
    r"\usepackage{amsmath,amssymb,bm,mathrsfs,cancel}",
    r"\usepackage{xcolor}",
    r"\usepackage[active,tightpage]{preview}",
    r"\setlength\PreviewBorder{2pt}",
    r"\pagestyle{empty}",
    r"\begin{document}",
)
PDFLATEX_ARGS = ("-interaction=nonstopmode", "-no-shell-escape", "-file-line-error")

RenderResult = dict


def check_tools() -> None:
    """Raise :class:`InputError` unless ``pdflatex`` and ``pdftoppm`` are on PATH (Debian TeX Live + poppler)."""
    missing = [tool for tool in ("pdflatex", "pdftoppm") if shutil.which(tool) is None]
    if missing:
        raise InputError(
            f"{' and '.join(missing)} not found: ExpRate@CDM needs TeX Live and poppler-utils "
            "(run `make sysdeps` or `bash env/install_system_deps.sh`)"
        )


def document(sources: list[str]) -> tuple[str, int]:
    """The LaTeX document for ``sources`` (one page per expression) and the line number of the first expression."""
    body = [rf"\begin{{preview}}\hbox{{$\displaystyle {src}$}}\end{{preview}}" for src in sources]
    text = "\n".join((*PREAMBLE, *body, r"\end{document}", ""))
    return text, len(PREAMBLE) + 1


def _read_ppm(path: Path) -> np.ndarray:
    """A binary PPM (P6, maxval 255) → ``uint8`` array (H, W, 3)."""
    data = path.read_bytes()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    if fields[0] != b"P6" or fields[3] != b"255":
        raise RuntimeError(f"{path.name}: unexpected PPM header {fields!r}")
    width, height = int(fields[1]), int(fields[2])
    pixels = np.frombuffer(data, dtype=np.uint8, count=width * height * 3, offset=pos + 1)
    return pixels.reshape(height, width, 3)


def boxes_from_image(img: np.ndarray) -> list[list[int]]:
    """Per-colour bounding boxes: ``[[k, x0, y0, x1, y1], ...]`` sorted by ``k`` (colour index, see
    :func:`unimumer.evaluation.cdm.latex.color_of`); pixels that are white, black or not an exact token colour are ignored."""
    rgb = img.astype(np.int32)
    exact = ((rgb % 8) == 0).all(axis=2) & (rgb <= 240).all(axis=2)
    code = (rgb[..., 0] // 8) * 961 + (rgb[..., 1] // 8) * 31 + rgb[..., 2] // 8
    ys, xs = np.nonzero(exact & (code > 0))
    if ys.size == 0:
        return []
    codes = code[ys, xs]
    order = np.argsort(codes, kind="stable")
    codes, xs, ys = codes[order], xs[order], ys[order]
    keys, starts = np.unique(codes, return_index=True)
    x0 = np.minimum.reduceat(xs, starts)
    x1 = np.maximum.reduceat(xs, starts) + 1
    y0 = np.minimum.reduceat(ys, starts)
    y1 = np.maximum.reduceat(ys, starts) + 1
    return [[int(k), int(a), int(b), int(c), int(d)] for k, a, b, c, d in zip(keys, x0, y0, x1, y1, strict=True)]


def page_result(img: np.ndarray) -> RenderResult:
    """One rendered page (``uint8`` (H, W, 3)) → :data:`RenderResult`, in the official toolkit's frame: the page is
    cropped to its non-white pixels plus :data:`CROP_PAD` px (a page without ink: a 26 × 26 crop at the corner),
    boxes are colour extents ± 1 px in the cropped frame."""
    ink = (img != 255).any(axis=2)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size:
        x_min, x_max, y_min, y_max = int(cols[0]), int(cols[-1]), int(rows[0]), int(rows[-1])
    else:
        x_min, x_max, y_min, y_max = 0, 10, 0, 10
    ox, oy = x_min - CROP_PAD, y_min - CROP_PAD
    boxes = [[k, x0 - 1 - ox, y0 - 1 - oy, x1 - ox, y1 - oy] for k, x0, y0, x1, y1 in boxes_from_image(img)]
    return {"ok": True, "error": None, "size": [x_max - x_min + 2 * CROP_PAD, y_max - y_min + 2 * CROP_PAD],
            "boxes": boxes}


#: the official page: landscape ISO A5, A4 past 600 coloured tokens, A3 past 1,300; ``geometry`` scale 0.98
PAPER_WIDTH_MM = {5: 210.0, 4: 297.0, 3: 420.0}
GEOMETRY_SCALE = 0.98


def paper_size(n_tokens: int) -> int:
    """ISO A-size of the official toolkit's page for an expression of ``n_tokens`` coloured tokens (5, 4 or 3)."""
    return 3 if n_tokens > 1300 else 4 if n_tokens > 600 else 5


def clip_to_page(result: RenderResult, n_tokens: int, dpi: int = DPI) -> RenderResult:
    """Cut a render to what the official toolkit's page shows: a display wider than the text width starts at the
    left margin and runs off the right edge of the landscape page (:func:`paper_size`), so ink further right than
    ``page width − left margin`` has no pixels there. Boxes starting beyond it are dropped, boxes crossing it end
    there, the width shrinks accordingly. A result that fits (all CROHME expressions) is returned unchanged."""
    width_mm = PAPER_WIDTH_MM[paper_size(n_tokens)]
    visible = int(width_mm * (1 - (1 - GEOMETRY_SCALE) / 2) / 25.4 * dpi)  # from the left margin to the page edge
    limit = CROP_PAD + visible  # in the cropped frame, whose ink starts at CROP_PAD
    if not result.get("ok") or result["size"][0] <= limit + CROP_PAD:
        return result
    boxes = [[k, x0, y0, min(x1, limit), y1] for k, x0, y0, x1, y1 in result["boxes"] if x0 + 1 < limit]
    return dict(result, size=[limit + CROP_PAD, result["size"][1]], boxes=boxes)


def _tex_errors(log: str, first_line: int, n: int) -> tuple[dict[int, str], bool]:
    """Map TeX errors in ``log`` to expression indices. Returns ``({index: message}, all_attributed)``."""
    errors: dict[int, str] = {}
    attributed = True
    lines = log.splitlines()
    for i, line in enumerate(lines):
        # -file-line-error: "./doc.tex:12: Undefined control sequence."
        if line.startswith("./doc.tex:"):
            head, _, msg = line[len("./doc.tex:"):].partition(":")
            if head.isdigit() and first_line <= int(head) < first_line + n:
                errors.setdefault(int(head) - first_line, msg.strip() or "TeX error")
            else:
                attributed = False
        elif line.startswith("! "):
            # errors without file:line (e.g. emergency stop): attribute through the following "l.NN" line
            for follow in lines[i + 1:i + 12]:
                if follow.startswith("l.") and follow[2:].split(" ", 1)[0].isdigit():
                    num = int(follow[2:].split(" ", 1)[0])
                    if first_line <= num < first_line + n:
                        errors.setdefault(num - first_line, line[2:].strip())
                    else:
                        attributed = False
                    break
            else:
                attributed = False
    return errors, attributed


def _run_once(sources: list[str], dpi: int, timeout: float, solo: bool) -> tuple[list | None, dict[int, str], bool]:
    """One pdflatex + pdftoppm pass. Returns ``(results or None, errors by index, attributed)``."""
    with tempfile.TemporaryDirectory(prefix="unimumer-cdm-") as tmp:
        tmpdir = Path(tmp)
        text, first_line = document(sources)
        (tmpdir / "doc.tex").write_text(text, encoding="utf-8")
        args = ["pdflatex", *PDFLATEX_ARGS, *(["-halt-on-error"] if solo else []), "doc.tex"]
        env = dict(os.environ, openout_any="p", openin_any="p", shell_escape="f")
        try:
            subprocess.run(args, cwd=tmpdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=timeout, env=env, check=False)
        except subprocess.TimeoutExpired:
            return None, {i: f"pdflatex timed out after {timeout:g} s" for i in range(len(sources))}, False
        log_path = tmpdir / "doc.log"
        log = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
        errors, attributed = _tex_errors(log, first_line, len(sources))
        pdf = tmpdir / "doc.pdf"
        if errors or not attributed or not pdf.exists():
            if not errors and not pdf.exists():
                attributed = False
            return None, errors, attributed
        try:
            subprocess.run(["pdftoppm", "-r", str(dpi), "-aa", "no", "-aaVector", "no", "doc.pdf", "page"],
                           cwd=tmpdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=timeout, check=True)
        except (subprocess.TimeoutExpired, subprocess.CalledProcessError) as exc:
            return None, {i: f"pdftoppm failed ({type(exc).__name__})" for i in range(len(sources))}, False
        pages = sorted(tmpdir.glob("page-*.ppm"))
        if len(pages) != len(sources):
            return None, {}, False
        return [page_result(_read_ppm(page)) for page in pages], {}, True


def render_sources(sources: list[str], *, dpi: int = DPI, timeout: float = 10.0) -> list[RenderResult]:
    """Render colour-coded math sources; one :data:`RenderResult` per source, in order.

    ``timeout`` is the time limit per expression (a batch of ``n`` gets ``timeout + 0.5·n`` s and is bisected when
    it runs out, so a hanging expression ends as a failure of its own). Never raises for a bad
    expression (its result has ``ok: False`` and the TeX error); raises :class:`InputError` if the tools are
    missing. Empty sources render as an empty image without running TeX.
    """
    check_tools()
    out: list[RenderResult | None] = [None] * len(sources)
    todo = []
    for i, src in enumerate(sources):
        if src.strip():
            todo.append(i)
        else:
            out[i] = {"ok": True, "error": None, "size": [0, 0], "boxes": []}
    _render_into(out, todo, sources, dpi, timeout)
    return out  # type: ignore[return-value]


def _render_into(out: list, idx: list[int], sources: list[str], dpi: int, timeout: float) -> None:
    if not idx:
        return
    solo = len(idx) == 1
    batch = [sources[i] for i in idx]
    # a batch of n gets timeout + 0.5 s per expression (a normal page takes ~10 ms); past that it is bisected,
    # so an expression that hangs costs about log2(n) batch limits and then its own ``timeout``
    limit = timeout if solo else timeout + 0.5 * len(batch)
    results, errors, attributed = _run_once(batch, dpi, limit, solo)
    if results is not None:
        for i, res in zip(idx, results, strict=True):
            out[i] = res
        return
    if solo:
        msg = errors.get(0) or next(iter(errors.values()), None) or "pdflatex produced no page"
        out[idx[0]] = {"ok": False, "error": msg, "size": [0, 0], "boxes": []}
        return
    if attributed and errors:
        bad = [idx[k] for k in sorted(errors)]
        good = [i for k, i in enumerate(idx) if k not in errors]
        _render_into(out, good, sources, dpi, timeout)
        for i in bad:  # a failure is only declared from a solo run
            _render_into(out, [i], sources, dpi, timeout)
        return
    half = len(idx) // 2
    _render_into(out, idx[:half], sources, dpi, timeout)
    _render_into(out, idx[half:], sources, dpi, timeout)
