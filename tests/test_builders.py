"""Data builders and their CLIs: official Tree-CoT tool compatibility, normalization CLI, prompt files from real
CROHME data, one-command training sets (streaming, multiprocessing, dataset_info registration)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from unimumer.cli import run_main
from unimumer.commands.build_data import main as main_build
from unimumer.commands.normalize import main as main_normalize
from unimumer.commands.prompts import main as main_prompts
from unimumer.commands.tree import main as main_tree
from unimumer.data.prompt_files import build_prompts_from_crohme, build_prompts_from_latex_json, read_captions
from unimumer.data.training_sets import build_training_set
from unimumer.files import read_json, write_json
from unimumer.tasks import TASKS

FIX = Path(__file__).parent / "fixtures" / "reference"
TREE = FIX / "tree_cot"
CROHME2014_IMAGES = Path(__file__).parent / "fixtures" / "images" / "crohme2014"
REPO = Path(__file__).resolve().parents[1]


def _crohme_sample(tmp_path: Path, n: int = 12) -> Path:
    """A CROHME-style folder (caption.txt + img/*.png, white on black): the first ``n`` bundled real 2014 images."""
    src = tmp_path / "crohme_src"
    (src / "img").mkdir(parents=True)
    lines = []
    for img_id, latex in read_captions(CROHME2014_IMAGES / "caption.txt")[:n]:
        shutil.copy(CROHME2014_IMAGES / "img" / f"{img_id}.png", src / "img" / f"{img_id}.png")
        lines.append(f"{img_id}\t{latex}")
    assert len(lines) == n
    (src / "caption.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return src


# --------------------------------------------------------------------------------------- official tree CLI
def test_tree_cli_writes_the_official_files_byte_for_byte(tmp_path, capsys):
    for name in ("sample_input.json", "crohme_2014_input.json", "crohme2023_test_input.json"):
        shutil.copy(TREE / name, tmp_path / name)
    assert main_tree(["--task", "tree", "--input", str(tmp_path), "--output", str(tmp_path / "out")]) == 0
    assert main_tree(["--task", "can", "--input", str(tmp_path), "--output", str(tmp_path / "out"),
                      "--exclude-substring", "2023"]) == 0
    out = tmp_path / "out"
    for stem in ("sample", "crohme_2014"):
        for task in ("tree", "can"):
            assert (out / f"{stem}_input_{task}.json").read_bytes() == (TREE / f"{stem}_{task}.json").read_bytes()
    assert (out / "crohme2023_test_input_tree.json").read_bytes() == (TREE / "crohme2023_test_tree.json").read_bytes()
    assert not (out / "crohme2023_test_input_can.json").exists()
    printed = capsys.readouterr().out
    assert "crohme2023_test_input_tree.json | kept=2141 skipped=159 parse_error=159" in printed


def test_tree_cli_naming_strict_and_errors(tmp_path, capsys):
    src = tmp_path / "crohme2023.json"
    shutil.copy(TREE / "crohme2023_test_input.json", src)
    assert main_tree(["--task", "can", "--input", str(src), "--prefix", "p_", "--suffix", "_counts",
                      "--indent", "2"]) == 0
    data = read_json(tmp_path / "p_crohme2023_counts.json")
    assert len(data) == 2300 and (tmp_path / "p_crohme2023_counts.json").read_text().startswith('[\n  {')
    assert main_tree(["--task", "tree", "--input", str(src), "--output", str(tmp_path / "exact.json")]) == 0
    assert (tmp_path / "exact.json").read_bytes() == (TREE / "crohme2023_test_tree.json").read_bytes()
    # --strict: the first malformed record is an error (exit 2, one line, no output file).
    code = run_main(main_tree, ["--task", "tree", "--input", str(src), "--output", str(tmp_path / "s.json"),
                                "--strict"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "record" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.json").exists()
    assert run_main(main_tree, ["--task", "tree", "--input", str(tmp_path / "missing")]) == 2
    (tmp_path / "bad.json").write_text("[{", encoding="utf-8")
    assert run_main(main_tree, ["--task", "tree", "--input", str(tmp_path / "bad.json")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_tree_cli_counts_malformed_records_as_skipped(tmp_path, capsys):
    records = read_json(TREE / "sample_input.json") + [{"images": [], "messages": []}, {"messages": "x"}]
    write_json(tmp_path / "mixed.json", records)
    assert main_tree(["--task", "tree", "--input", str(tmp_path / "mixed.json")]) == 0
    assert "kept=2 skipped=2 bad_record=2" in capsys.readouterr().out
    assert read_json(tmp_path / "mixed_tree.json") == read_json(TREE / "sample_tree.json")


# --------------------------------------------------------------------------------------- normalization CLI
def test_normalize_cli_reproduces_the_official_normalized_gt(tmp_path, capsys):
    out = tmp_path / "norm.json"
    assert main_normalize(["--input", str(FIX / "predictions" / "crohme2023_test_pred.json"),
                           "--output", str(out)]) == 0
    got = read_json(out)
    ref = read_json(FIX / "predictions" / "crohme2023_test_normalized_pred.json")
    assert [(r["img_id"], r["gt"]) for r in got] == [(r["img_id"], r["gt"]) for r in ref]
    raw = {r["img_id"]: r for r in read_json(FIX / "predictions" / "crohme2023_test_pred.json")}
    assert all(r["pred"] == raw[r["img_id"]]["pred"] for r in got)  # other fields untouched
    printed = capsys.readouterr().out
    assert "records=2300 kept=1652 dropped=648" in printed and "unbalanced_braces: 609" in printed
    assert out.read_text(encoding="utf-8").startswith('[\n  {\n    "gt"')  # prediction-file layout (indent 2)


def test_normalize_cli_on_sharegpt_and_raw_latex(tmp_path, capsys):
    recs = [
        {"images": ["a.png"], "messages": [{"from": "human", "value": "<image>p"},
                                            {"from": "gpt", "value": "\\frac12+\\left(x\\right)"}]},
        {"images": ["b.png"], "messages": [{"from": "human", "value": "<image>p"},
                                            {"from": "gpt", "value": "\\varphi"}]},
    ]
    write_json(tmp_path / "in.json", recs)
    assert main_normalize(["--input", str(tmp_path / "in.json"), "--output", str(tmp_path / "o.json"),
                           "--tokenize"]) == 0
    got = read_json(tmp_path / "o.json")
    assert len(got) == 1 and got[0]["messages"][1]["value"] == "\\frac { 1 } { 2 } + ( x )"
    assert "delete_chars: 1" in capsys.readouterr().out
    assert run_main(main_normalize, ["--input", str(tmp_path / "in.json"), "--output", str(tmp_path / "x.json"),
                                     "--field", "gt"]) == 2
    assert "no record has field 'gt'" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


# --------------------------------------------------------------------------------------- prompt files
def test_crohme_test_prompts_in_the_official_layout(tmp_path, capsys):
    src = _crohme_sample(tmp_path, n=6)
    repo = tmp_path / "repo"
    code = main_prompts(["--crohme-dir", str(src), "--split", "2014", "--data-root", str(repo / "data"),
                         "--out", str(repo / "data" / "CROHME" / "prompts" / "crohme_2014.json")])
    assert code == 0 and "captions=6 written=6" in capsys.readouterr().out
    recs = read_json(repo / "data" / "CROHME" / "prompts" / "crohme_2014.json")
    captions = dict(read_captions(src / "caption.txt"))
    assert len(recs) == 6
    for rec in recs:
        image = rec["images"][0]
        img_id = Path(image).stem
        assert image == f"./data/CROHME/2014/images/{img_id}.jpg"
        assert rec["messages"][0]["value"] == "<image>" + TASKS["vanilla"].prompt()
        assert rec["messages"][1]["value"] == captions[img_id]
        with Image.open(repo / image) as im:  # black strokes on white, RGB JPEG, same size as the source
            assert im.format == "JPEG" and im.mode == "RGB"
            a = np.asarray(im.convert("L"))
            with Image.open(src / "img" / f"{img_id}.png") as orig:
                assert orig.size == im.size
        assert np.median(a) > 200 and a.min() < 80


def test_latex_json_prompts_tokenize_normalize_and_count_drops(tmp_path):
    src = _crohme_sample(tmp_path, n=4)
    imgs = sorted((src / "img").glob("*.png"))
    rows = [
        {"image": f"crohme_src/img/{imgs[0].name}", "latex": "\\frac{a}{b}+x_i"},
        {"image": str(imgs[1]), "latex": "\\sqrt2\\le\\left(y\\right)"},
        {"image": f"crohme_src/img/{imgs[2].name}", "latex": "x^{2"},  # unbalanced
        {"image": "crohme_src/img/missing.png", "latex": "x"},
        {"image": f"crohme_src/img/{imgs[3].name}", "latex": "\\varphi"},  # delete_chars
        {"latex": "no image"},
    ]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    out, stats = build_prompts_from_latex_json(tmp_path / "rows.jsonl", tmp_path / "data", "MathWriting", "train",
                                               workers=1)
    assert stats == {"records": 6, "written": 2, "unbalanced_braces": 1, "missing_image": 1, "delete_chars": 1,
                     "bad_record": 1}
    recs = read_json(out)
    assert out == tmp_path / "data" / "MathWriting" / "train" / "mathwriting_train.json"
    assert [r["messages"][1]["value"] for r in recs] == ["\\frac { a } { b } + x _ { i }",
                                                         "\\sqrt { 2 } \\leq ( y )"]
    assert recs[0]["images"][0] == f"MathWriting/train/images/{imgs[0].stem}.png"  # relative to the dataset_dir
    assert all((tmp_path / "data" / r["images"][0]).is_file() for r in recs)


def test_prompt_errors_are_one_liners(tmp_path, capsys):
    assert run_main(main_prompts, ["--crohme-dir", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "caption.txt").write_text("only_id\n", encoding="utf-8")
    assert run_main(main_prompts, ["--crohme-dir", str(tmp_path / "c"), "--data-root", str(tmp_path)]) == 2
    assert "caption.txt:1" in capsys.readouterr().err


# --------------------------------------------------------------------------------------- training sets
def test_build_training_set_matches_the_official_files_and_registers(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_json(data / "dataset_info.json", {"other": {"file_name": "x.json"}}, indent=2)
    src = tmp_path / "vanilla.json"
    shutil.copy(TREE / "crohme_2014_input.json", src)
    paths = build_training_set(src, "crohme_train", output_dir=data / "CROHME", workers=2, chunk_size=100)
    assert set(paths) == {"crohme_train", "crohme_train_tree", "crohme_train_can"}
    assert paths["crohme_train"].read_bytes() == src.read_bytes()
    assert paths["crohme_train_tree"].read_bytes() == (TREE / "crohme_2014_tree.json").read_bytes()
    assert paths["crohme_train_can"].read_bytes() == (TREE / "crohme_2014_can.json").read_bytes()
    info = read_json(data / "dataset_info.json")
    assert info["other"] == {"file_name": "x.json"}
    assert info["crohme_train_tree"] == {"file_name": "CROHME/crohme_train_tree.json", "formatting": "sharegpt",
                                         "columns": {"messages": "messages", "images": "images"}}
    assert oct(os.stat(paths["crohme_train_can"]).st_mode & 0o777) != oct(0o600)
    assert "crohme_train: input records=986 skipped: none" in capsys.readouterr().out


def test_build_training_set_cli_streams_jsonl_and_counts_tree_skips(tmp_path, capsys):
    recs = read_json(TREE / "crohme2023_test_input.json")
    (tmp_path / "v.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs),
                                      encoding="utf-8")
    code = main_build(["--input", str(tmp_path / "v.jsonl"), "--name", "crohme2023", "--tasks", "tree,can",
                       "--output-dir", str(tmp_path / "out"), "--workers", "1", "--chunk-size", "333"])
    assert code == 0
    assert (tmp_path / "out" / "crohme2023_tree.json").read_bytes() == (TREE / "crohme2023_test_tree.json").read_bytes()
    assert len(read_json(tmp_path / "out" / "crohme2023_can.json")) == 2300
    assert set(read_json(tmp_path / "out" / "dataset_info.json")) == {"crohme2023_tree", "crohme2023_can"}
    assert "tree_parse_error=159" in capsys.readouterr().out
    assert run_main(main_build, ["--input", str(tmp_path / "v.jsonl"), "--name", "x", "--tasks", "tree,oops"]) == 2
    assert run_main(main_build, ["--input", str(tmp_path / "none.json"), "--name", "x"]) == 2


def test_bundled_crohme_train_sample_through_prompts_and_training_set(tmp_path, capsys):
    """Real data: the 48 bundled CROHME training images and captions (``data/sample/crohme/train``) → vanilla /
    tree / can, registered."""
    src = REPO / "data" / "sample" / "crohme" / "train"
    data = tmp_path / "data"
    write_json(data / "dataset_info.json", read_json(REPO / "data" / "dataset_info.json"), indent=2)
    out, stats = build_prompts_from_crohme(src, data, "CROHME", "train")
    assert stats == {"captions": 48, "written": 48}
    assert out == data / "CROHME" / "train" / "crohme_train.json"
    paths = build_training_set(out, "crohme_train")  # next to the input, registered in data/dataset_info.json
    for name, n in (("crohme_train", 48), ("crohme_train_tree", 48), ("crohme_train_can", 48)):
        assert len(read_json(paths[name])) == n
    # the entries the repository's registry already holds are reproduced exactly; the other 37 are untouched
    assert read_json(data / "dataset_info.json") == read_json(REPO / "data" / "dataset_info.json")
    first = read_json(paths["crohme_train_tree"])[0]
    assert (data / first["images"][0]).is_file()  # resolves through LLaMA-Factory's media_dir (= dataset_dir)
    printed = capsys.readouterr().out
    assert "crohme_train: input records=48 skipped: none" in printed
    print(f"CROHME train: {stats}")


def test_build_training_set_reports_a_bad_jsonl_line_from_a_worker(tmp_path, capsys):
    recs = read_json(TREE / "sample_input.json") * 40
    lines = [json.dumps(r, ensure_ascii=False) for r in recs]
    lines[57] = "{not json"
    (tmp_path / "v.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code = run_main(main_build, ["--input", str(tmp_path / "v.jsonl"), "--name", "s", "--workers", "2",
                                 "--chunk-size", "10", "--output-dir", str(tmp_path / "o")])
    assert code == 2 and "record 57: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "o" / "s_tree.json").exists() and not list((tmp_path / "o").glob(".*.tmp"))


def test_record_serialisation_is_byte_identical_to_json_dumps():
    from unimumer.data.serialisation import _serialise

    items = read_json(TREE / "sample_tree.json") + [
        {"images": [], "messages": []},
        {"images": ["a", "b"], "messages": [{"from": "x", "value": "y\n\"é\t\\"}]},
        {"messages": [], "images": ["a"]},
        {"images": ["a"], "messages": [{"from": "human", "value": "v", "extra": 1}]},
        {"images": ["a"], "messages": [{"value": "v", "from": "human"}]},
    ]
    for indent in (0, 1, 2, 4):
        pad = " " * indent
        for item in items:
            assert _serialise(item, indent) == pad + json.dumps(item, ensure_ascii=False, indent=indent).replace(
                "\n", "\n" + pad)
