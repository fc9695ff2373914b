"""Malformed input never gives a traceback: every data-reading CLI answers with exit 0 (records skipped
and counted) or one ``error:`` line and exit 2 (exit 1: some files of a folder skipped).

CLIs: make_mathnet_hmer_data.py (process, prompt-only), make_hmer_prompts.py (--latex-json, --crohme-dir with
malformed images), normalize_latex.py, make_unimumer_tree_data.py, build_training_data.py, make_error_data.py,
eval_metrics_calculator.py and summarize_results.py. Not covered here: the inference / training CLIs (they need a
model) and prepare_released_data.py (parquet input).

The CLIs run in-process through :func:`unimumer.cli.run_main`, exactly as their ``preprocess/`` / ``eval/`` scripts
call them: an exception that escapes ``run_main`` is the traceback a user would see.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from unimumer.cli import run_main
from unimumer.commands.build_data import main as main_build
from unimumer.commands.error_data import main as main_edl
from unimumer.commands.eval import main as main_metrics
from unimumer.commands.mathnet import main as main_mathnet
from unimumer.commands.normalize import main as main_normalize
from unimumer.commands.prompts import main as main_prompts
from unimumer.commands.summary import main as main_summary
from unimumer.commands.tree import main as main_tree
from unimumer.errors import InputError
from unimumer.images import load_image

KEYS = ["img_id", "label", "gt", "pred", "image", "latex", "images", "messages", "from", "value", "error"]
LATEX = st.sampled_from(["x + 1", "\\frac { a } { b }", "\\frac { a", "x ^ { 2", "求 x", "\\begin{matrix}a\\end{matrix}",
                         "", " ", "\\", "{}", "\\sqrt [ ] x", "a & b \\\\", "\\left( x"])
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), LATEX, st.text(max_size=8))
JSONV = st.recursive(SCALAR, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.sampled_from(KEYS), c,
                                                                                        max_size=4)), max_leaves=12)
RECORD = st.one_of(
    JSONV,
    st.fixed_dictionaries({"img_id": SCALAR, "label": SCALAR}),
    st.fixed_dictionaries({"img_id": st.text(max_size=6), "gt": LATEX, "pred": LATEX}),
    st.fixed_dictionaries({"images": st.lists(st.text(max_size=6), max_size=2),
                           "messages": st.lists(st.fixed_dictionaries({"from": st.sampled_from(["human", "gpt", "x"]),
                                                                       "value": LATEX}), max_size=3)}),
)


@st.composite
def payloads(draw) -> tuple[str, bytes]:
    """(suffix, file bytes): JSON arrays / JSONL of odd records, truncated, with bytes that are not UTF-8, or noise."""
    suffix = draw(st.sampled_from([".json", ".jsonl", ".txt"]))
    kind = draw(st.sampled_from(["array", "lines", "noise", "value"]))
    records = draw(st.lists(RECORD, max_size=5))
    if kind == "array":
        data = json.dumps(records, ensure_ascii=False).encode()
    elif kind == "lines":
        data = "\n".join(json.dumps(r, ensure_ascii=False) if draw(st.booleans()) else
                         f"id{i} {r if isinstance(r, str) else draw(LATEX)}" for i, r in enumerate(records)).encode()
    elif kind == "value":
        data = json.dumps(draw(JSONV)).encode()
    else:
        data = draw(st.binary(max_size=64))
    if data and draw(st.booleans()):
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.sampled_from([b"", b"\xff\xfe", b"\xc3", b"\x00", b"\n\n"])) + data[cut:]
    return suffix, data


def _cli_runs(src: Path, out: Path) -> list[tuple[object, list[str]]]:
    s = str(src)
    return [
        (main_mathnet, ["process", "--input", s, "--output-dir", str(out / "mn"), "--image-base-path", "img"]),
        (main_mathnet, ["prompt-only", "--input", s, "--output-dir", str(out / "po"), "--image-base-path", "img"]),
        (main_prompts, ["--latex-json", s, "--data-root", str(out / "data"), "--dataset", "X", "--split", "t",
                        "--workers", "1"]),
        (main_normalize, ["--input", s, "--output", str(out / "norm.json")]),
        (main_tree, ["--task", "tree", "--input", s, "--output", str(out / "tree.json")]),
        (main_build, ["--input", s, "--name", "fz", "--output-dir", str(out / "b"), "--workers", "1",
                      "--no-register"]),
        (main_edl, ["--input", s, "--output-dir", str(out / "edl"), "--name", "fz", "--no-register"]),
        (main_metrics, ["--input", s, "--output", str(out / "r.txt")]),
        (main_summary, [s, "--output", str(out / "summary.md")]),
        (main_summary, [str(src.parent / "data"), "--output", str(out / "summary2.md")]),
    ]


def _check(main, argv) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = run_main(main, argv)  # an exception escaping here is a traceback for the user
    assert code in (0, 1, 2), (argv, code)
    if code == 2:
        lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("error:")]
        assert len(lines) == 1, (argv, err.getvalue())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads())
def test_no_cli_tracebacks_on_malformed_records_and_bytes(payload):
    suffix, data = payload
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"input{suffix}"
        src.write_bytes(data)
        results = Path(tmp) / "data" / "CROHME" / "results"  # the same bytes as a prediction file to summarise
        results.mkdir(parents=True)
        (results / "crohme_2014_pred.json").write_bytes(data)
        for main, argv in _cli_runs(src, Path(tmp) / "out"):
            _check(main, argv)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A few hundred bytes that claim a 30000 x 30000 grayscale image (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + _png_chunk(b"IEND", b""))


def _strokes(value_bg: int, value_fg: int, dtype) -> np.ndarray:
    a = np.full((40, 60), value_bg, dtype)
    a[10:30, 20:40] = value_fg
    return a


def test_16bit_and_palette_images_keep_their_strokes(tmp_path):
    cases = {
        # a scan's grays use the whole 16-bit range: strokes at 8000 / background at 1000 are dark, but > 255
        "g16_black_on_white.png": Image.fromarray(_strokes(50000, 8000, np.uint16)),
        "g16_white_on_black.png": Image.fromarray(_strokes(1000, 60000, np.uint16)),
    }
    pal = Image.fromarray(_strokes(1, 0, np.uint8), mode="P")
    pal.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    cases["palette.png"] = pal
    for name, im in cases.items():
        im.save(tmp_path / name)
        with Image.open(tmp_path / name) as check:
            assert name == "palette.png" or check.mode.startswith("I")  # really stored 16-bit
        rgb = np.asarray(load_image(tmp_path / name))
        assert (rgb[10:30, 20:40] < 64).all() and (rgb[:10] > 192).all(), name  # black strokes on white


def test_bomb_and_truncated_images_are_counted_skips(tmp_path):
    src = tmp_path / "crohme"
    (src / "img").mkdir(parents=True)
    good = Image.fromarray(_strokes(0, 255, np.uint8))
    good.save(src / "img" / "ok.png")
    (src / "img" / "bomb.png").write_bytes(bomb_png())
    (src / "img" / "trunc.png").write_bytes((src / "img" / "ok.png").read_bytes()[:50])
    (src / "img" / "empty.png").write_bytes(b"")
    Image.fromarray(_strokes(0, 60000, np.uint16)).save(src / "img" / "deep.png")
    (src / "caption.txt").write_text("ok x + 1\nbomb y\ntrunc z\nempty w\ndeep \\frac { a } { b }\n", encoding="utf-8")
    with pytest.raises(InputError, match="decompression bomb"):
        load_image(src / "img" / "bomb.png")
    out = tmp_path / "p.json"
    err, std = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        code = run_main(main_prompts, ["--crohme-dir", str(src), "--data-root", str(tmp_path / "data"), "--split",
                                       "2014", "--out", str(out), "--workers", "1"])
    assert code == 0, err.getvalue()
    written = json.loads(out.read_text(encoding="utf-8"))
    assert [r["messages"][1]["value"] for r in written] == ["x + 1", "\\frac { a } { b }"]
    assert "unreadable_image=3" in std.getvalue() and "written=2" in std.getvalue()  # counted, reported


def test_a_bad_file_never_aborts_the_other_files_of_a_folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good = [{"images": ["a.png"], "messages": [{"from": "human", "value": "<image>x"},
                                                {"from": "gpt", "value": "x ^ { 2 }"}]}]
    (src / "a_empty.json").write_bytes(b"")
    (src / "b_bad.json").write_bytes(b'[{"images": ["\xff')
    (src / "c_good.json").write_text(json.dumps(good), encoding="utf-8")
    err, std = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        code = run_main(main_tree, ["--task", "tree", "--input", str(src), "--output", str(tmp_path / "out")])
    assert code == 1 and "2 of 3 input files skipped" in err.getvalue()
    assert err.getvalue().count("skipped file: ") == 2 and "b_bad.json:1: not UTF-8" in err.getvalue()
    out = json.loads((tmp_path / "out" / "c_good_tree.json").read_text(encoding="utf-8"))
    assert out[0]["messages"][1]["value"].endswith("x ^ { 2 }")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c_good_tree.json"]  # no half-written file


def test_extreme_aspect_ratio_is_an_input_error_for_the_model_loader(tmp_path):
    from unimumer.images import load_model_image

    Image.new("L", (2010, 10), 255).save(tmp_path / "wide.png")
    Image.new("L", (1990, 10), 255).save(tmp_path / "ok.png")
    with pytest.raises(InputError, match="extreme aspect ratio 2010 x 10"):
        load_model_image(tmp_path / "wide.png")
    assert load_model_image(tmp_path / "ok.png").size == (1990, 10)
    assert load_image(tmp_path / "wide.png").size == (2010, 10)  # data building still reads it


@pytest.mark.parametrize("name", ["", "a/b", "a\\b", "a b", " a", "a\t", "x.json"])
def test_one_dataset_name_check_for_every_builder(tmp_path, name):
    from unimumer.data.training_sets import build_training_set
    from unimumer.edl.marking import write_edl_datasets
    from unimumer.tasks import check_dataset_base_name

    with pytest.raises(InputError, match="plain dataset base name"):
        check_dataset_base_name(name)
    src = tmp_path / "v.json"
    src.write_text("[]", encoding="utf-8")
    with pytest.raises(InputError, match="plain dataset base name"):
        build_training_set(src, name, ["vanilla"], tmp_path, None)
    with pytest.raises(InputError, match="plain dataset base name"):
        write_edl_datasets([src], tmp_path, name, None)
    assert check_dataset_base_name("crohme_train") == "crohme_train"


@st.composite
def image_files(draw) -> bytes:
    """Bytes of an image file: a small PNG / JPEG / BMP / GIF in any Pillow mode, truncated, corrupted, a bomb
    header, or noise."""
    kind = draw(st.sampled_from(["image", "image", "noise", "bomb", "empty"]))
    if kind == "noise":
        return draw(st.binary(max_size=200))
    if kind == "bomb":
        return bomb_png(draw(st.integers(14000, 60000)), draw(st.integers(14000, 60000)))
    if kind == "empty":
        return b""
    w, h = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    mode = draw(st.sampled_from(["1", "L", "P", "RGB", "RGBA", "LA", "I;16", "I", "F", "CMYK"]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if mode in ("I;16", "I"):
        im = Image.fromarray(rng.integers(0, 65535, (h, w)).astype(np.uint16 if mode == "I;16" else np.int32))
    elif mode == "F":
        im = Image.fromarray(rng.random((h, w)).astype(np.float32))
    else:
        im = Image.fromarray(rng.integers(0, 255, (h, w, 4), dtype=np.uint8), "RGBA").convert(mode)
    fmt = draw(st.sampled_from(["PNG", "TIFF", "BMP", "GIF", "JPEG"]))
    buf = io.BytesIO()
    try:
        im.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        im.convert("RGB").save(buf, format="PNG")
    data = buf.getvalue()
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    if cut is not None:
        data = data[:cut] + draw(st.binary(max_size=8))
    return data


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(image_files(), min_size=1, max_size=4))
def test_no_cli_traceback_on_malformed_images(blobs):
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "crohme"
        (src / "img").mkdir(parents=True)
        lines = []
        for i, blob in enumerate(blobs):
            (src / "img" / f"i{i}.png").write_bytes(blob)
            lines.append(f"i{i} x + {i}")
        (src / "caption.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        _check(main_prompts, ["--crohme-dir", str(src), "--data-root", str(Path(tmp) / "data"), "--split", "2014",
                              "--workers", "1"])
        for i in range(len(blobs)):  # the model loader too: an InputError (counted skip) or an image
            with contextlib.suppress(InputError):
                assert load_image(src / "img" / f"i{i}.png").mode == "RGB"
