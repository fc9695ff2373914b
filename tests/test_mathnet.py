"""``preprocess/make_mathnet_hmer_data.py``: the official prompt-data CLI (BFlameSwift/Uni-MuMER @ 3aea545d).

The official example (``tests/fixtures/reference/mathnet_hmer/``) must come back byte for byte, run as its README
runs it (from the repository root, ``--image-base-path preprocess/examples/mathnet_hmer/images --image-suffix .png``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from unimumer.data.mathnet import MARKER, process
from unimumer.errors import InputError

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / "preprocess" / "make_mathnet_hmer_data.py"
REF = Path(__file__).parent / "fixtures" / "reference" / "mathnet_hmer"
BASE = ["--image-base-path", "preprocess/examples/mathnet_hmer/images", "--image-suffix", ".png"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CLI), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("sample", ["sample_caption.txt", "sample_items.json"])
def test_process_and_prompt_only_are_byte_identical_to_the_official_example(tmp_path, sample):
    r = run("process", "--input", str(REF / sample), "--output-dir", "processed_output", *BASE,
            "--mathnet-root", "preprocess/MathNet4clean", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ("processed_output_0425_final.json", "invalid_record.json"):
        assert (tmp_path / "processed_output" / name).read_bytes() == (REF / "processed_output" / name).read_bytes()
    # Official step files (3aea545d processed_output/): csv.writer rows with "\r\n" line ends.
    out = tmp_path / "processed_output"
    assert (out / "step4_restored.csv").read_bytes() == b"x + y,sample_000\r\n\\frac x y,sample_001\r\n\\sqrt [ ] x,sample_002\r\n"
    assert (out / "step4_restored_normalized.csv").read_bytes() == (
        b"x + y,sample_000\r\n\\frac { x } { y },sample_001\r\n\\sqrt { x },sample_002\r\n")
    assert (out / "step7_point_six_tokenize_txt_only.txt").read_text() == "x + y\n\\frac { x } { y }\n\\sqrt { x }\n"
    assert (out / "step1_csv.csv").read_text(encoding="utf-8").splitlines()[0] == "caption,image_id"
    assert (out / "step9_hmer_json.json").read_bytes() == (out / "processed_output_0425_final.json").read_bytes()
    lines = r.stdout.splitlines()
    assert lines[:4] == ["start processing", "original caption lines count: 4", "step1 done",
                         "one_point_five_filter_invalid_caption: 1"]
    assert lines[-4:] == ["final caption lines count: 3", "loss caption lines count:  1", "invalid data count: 1",
                          "1.5invalid_delete: 1"]

    r = run("prompt-only", "--input", str(REF / sample), "--output-dir", "prompt_only_output", *BASE, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ("mid_output.json", "prompt_only_output.json"):
        assert (tmp_path / "prompt_only_output" / name).read_bytes() == (REF / "prompt_only_output" / name).read_bytes()
    assert r.stdout.strip() == f"prompt-only output: {tmp_path / 'prompt_only_output' / 'prompt_only_output.json'}"


def test_every_reject_type_flag_and_count(tmp_path, capsys):
    src = tmp_path / "captions.txt"
    src.write_text(
        "a0 求 x\n"              # 1.5invalid_delete (CJK)
        "a1 x ^ { 2\n"           # 4_tokenization_error (unbalanced)
        "a2\n"                   # 4_tokenization_error (empty caption)
        "a3 \\frac { a }\n"      # 5.5_normalize_error (missing argument), counted by catch_cnt
        "a4 \\alpha + 1\n"       # 8_post_delete with --delete-token \alpha
        "a5 \\begin{array}{lr} a & b \\end{array}\n"
        "a6 x_i\n"
        "a7 \\frac { b }\n"      # 5.5 after the last kept record: not in catch_cnt
        "a8 \\varphi \\le 1\n",  # delete_chars: 5.5, kept (normalised) with --remove false
        encoding="utf-8",
    )
    res = process(src, tmp_path / "out", "imgs", ".png", delete_tokens=["\\alpha"])
    printed = capsys.readouterr().out.splitlines()
    inv = json.loads((tmp_path / "out" / "invalid_record.json").read_text(encoding="utf-8"))
    assert [(r["image_id"], r["type"]) for r in inv] == [
        ("a0", "1.5invalid_delete"), ("a1", "4_tokenization_error"), ("a2", "4_tokenization_error"),
        ("a3", "5.5_normalize_error"), ("a7", "5.5_normalize_error"), ("a8", "5.5_normalize_error"),
        ("a4", "8_post_delete")]
    assert inv[0] == {"image_id": "a0", "caption": "求 x", "image_path": "imgs/a0.png", "type": "1.5invalid_delete"}
    assert "catch_cnt: 1" in printed and printed[printed.index("catch_cnt: 1") + 1] == "3"
    assert printed[-5:] == ["invalid data count: 7", "1.5invalid_delete: 1", "4_tokenization_error: 2",
                            "5.5_normalize_error: 3", "8_post_delete: 1"]
    final = json.loads(res["final"].read_text(encoding="utf-8"))
    assert res["final"].name == "out_0425_final.json" and res["kept"] == 2
    assert [r["messages"][1]["value"] for r in final] == ["\\begin {array} { c c } a & b \\end {array}", "x _ { i }"]
    assert final[1]["images"] == ["imgs/a6.png"]

    # --use-only-c false keeps l / r; --remove false keeps what cleaning would drop, which step 7.6/7.7 then rejects.
    process(src, tmp_path / "out", "imgs", ".png", use_only_c=False, remove=False, final_name_suffix=".json")
    capsys.readouterr()
    final = json.loads((tmp_path / "out" / "out.json").read_text(encoding="utf-8"))
    assert [r["messages"][1]["value"] for r in final][1:] == [
        "\\begin {array} { l r } a & b \\end {array}", "x _ { i }", "\\varphi \\leq 1"]
    inv = json.loads((tmp_path / "out" / "invalid_record.json").read_text(encoding="utf-8"))
    assert [(r["image_id"], r["type"]) for r in inv if r["type"].startswith("7.7")] == [
        ("a3", "7.7_empty_line"), ("a7", "7.7_empty_line")]
    assert not (tmp_path / "out" / "out_0425_final.json").exists()  # the folder was recreated


def test_refuses_to_delete_a_folder_it_did_not_create(tmp_path):
    mine = tmp_path / "precious"
    mine.mkdir()
    (mine / "thesis.tex").write_text("x")
    r = run("process", "--input", str(REF / "sample_caption.txt"), "--output-dir", str(mine), *BASE, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "refusing to delete" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and (mine / "thesis.tex").read_text() == "x"
    r = run("prompt-only", "--input", str(REF / "sample_caption.txt"), "--output-dir", str(mine), *BASE, cwd=tmp_path)
    assert r.returncode == 2 and (mine / "thesis.tex").exists()
    # an empty folder, or one it made itself, is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("prompt-only", "--input", str(REF / "sample_caption.txt"), "--output-dir", str(empty), *BASE,
               cwd=tmp_path).returncode == 0
    assert (empty / MARKER).is_file()
    assert run("process", "--input", str(REF / "sample_caption.txt"), "--output-dir", str(empty), *BASE,
               cwd=tmp_path).returncode == 0
    assert not (empty / "mid_output.json").exists() and (empty / "empty_0425_final.json").is_file()


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("bad.txt", b"a0 x + 1\na1 \xff\xfe y\n", "bad.txt:2: not UTF-8 text"),
        ("bad.json", b'[{"img_id": "a", "label": "x"}, {"img_id": "b"}]', "record 1 is not an object with"),
        ("bad.json", b'{"img_id": "a"}', "expected a JSON array"),
        ("bad.json", b"[{", "not valid JSON"),
        ("missing.txt", None, "not found"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path, name, data, message):
    if data is not None:
        (tmp_path / name).write_bytes(data)
    for cmd in ("process", "prompt-only"):
        r = run(cmd, "--input", str(tmp_path / name), "--output-dir", "o", *BASE, cwd=tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and message in r.stderr
    with pytest.raises(InputError):
        process(tmp_path / name, tmp_path / "o2", "imgs")


def test_output_dir_that_cannot_be_created_is_one_error_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("prompt-only", "--input", str(REF / "sample_caption.txt"), "--output-dir", str(blocker / "sub"), *BASE,
            cwd=tmp_path)
    assert r.returncode == 2 and r.stderr == f"error: {blocker / 'sub'}: cannot write (Not a directory: {blocker})\n"
    r = run("process", "--input", str(REF / "sample_caption.txt"), "--output-dir", str(blocker), *BASE, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr == f"error: {blocker}: cannot write (Not a directory)\n"
    assert blocker.read_text() == "x"
