"""Output-path safety of every CLI (``unimumer.files.check_outputs``) and the small input-handling rules.

Every command-line entry point that writes files is driven through a table of argv templates with a real input
(bundled CROHME predictions, captions, ShareGPT records): an output that is the input (same path, through a
symbolic link or a hard link) and an output that cannot be written (under ``/proc``, below a regular file) must
each give one ``error:`` line naming the output, exit code 2, no traceback, and leave the input bytes unchanged.
The commands that load a model get a model path that does not exist: the error must still be the output's, so the
output check runs before any model check or load. The ``main`` functions run in-process through
``unimumer.cli.run_main`` (a subprocess costs seconds of imports on two cores); one real ``scripts/*.py`` and one
real ``eval/*.sh`` run prove the entry points.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from unimumer.cli import run_main
from unimumer.files import read_json, write_json

REPO = Path(__file__).resolve().parents[1]
FIX = REPO / "tests" / "fixtures" / "reference"
PRED = FIX / "predictions" / "crohme_2014_pred.json"
VANILLA = FIX / "tree_cot" / "sample_input.json"
CAPTIONS = REPO / "data" / "sample" / "crohme" / "2014"
MISSING_MODEL = "/nonexistent/unimumer-model"
PY = sys.executable


def _main(dotted: str) -> Callable:
    module, name = dotted.split(":")
    return getattr(__import__(module, fromlist=[name]), name)


@dataclass
class Case:
    """One CLI: ``setup(tmp)`` makes its input and returns ``(input files to protect, extra paths)``;
    ``same(tmp, target, paths)`` the argv whose output is the file / folder ``target`` (``None``: the CLI cannot
    name its input as an output); ``bad(tmp, out, paths)`` the argv whose output is the unwritable ``out``;
    ``file_output``: the same-file case names a file (link variants apply); ``loads_model``: a model path is given."""

    name: str
    main: str
    setup: Callable
    same: Callable | None
    bad: Callable
    file_output: bool = True
    loads_model: bool = False


def _pred(tmp: Path):
    p = tmp / "in" / "crohme_2014_pred.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(PRED, p)
    return [p], {"in": p}


def _vanilla(name: str = "sample_input.json"):
    def setup(tmp: Path):
        p = tmp / "in" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(VANILLA, p)
        return [p], {"in": p}
    return setup


def _captions(tmp: Path):
    d = tmp / "crohme"
    shutil.copytree(CAPTIONS, d)
    return [d / "caption.txt"], {"in": d / "caption.txt", "dir": d}


def _edl_input(tmp: Path):
    # a prediction file whose name is one of make_error_data's outputs for --name crohme_train
    p = tmp / "in" / "crohme_train_error_find.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(PRED, p)
    return [p], {"in": p}


def _analysis_input(tmp: Path):
    p = tmp / "in" / "analysis.json"  # a prediction file named like analyze_errors' own output
    p.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(PRED, p)
    return [p], {"in": p}


def _model_dirs(tmp: Path):
    m, lora = tmp / "model", tmp / "lora"
    m.mkdir()
    lora.mkdir()
    (m / "config.json").write_text('{"model_type": "qwen2_5_vl"}', encoding="utf-8")
    (lora / "adapter_config.json").write_text("{}", encoding="utf-8")
    return [m / "config.json", lora / "adapter_config.json"], {"in": m, "model": m, "lora": lora}


def _mathnet(tmp: Path):
    d = tmp / "out"
    d.mkdir()
    (d / ".unimumer-mathnet-output").write_text("marker\n", encoding="utf-8")  # a folder this tool made (and deletes)
    p = d / "captions.txt"
    shutil.copy(FIX / "mathnet_hmer" / "sample_caption.txt", p)
    return [p], {"in": p, "dir": d}


def _prompts_dir(tmp: Path):
    d = tmp / "prompts"
    d.mkdir()
    p = d / "crohme_2014.json"
    shutil.copy(VANILLA, p)
    return [p], {"in": p, "dir": d}


def _released(tmp: Path):
    d = tmp / "released"
    d.mkdir()
    p = d / "README.md"
    p.write_text("released data\n", encoding="utf-8")
    return [p], {"in": d}


def _error_corpus(tmp: Path):
    files, paths = _edl_input(tmp)
    return files, paths


def _tiny(tmp: Path):
    return [], {}


CASES = [
    Case("eval_metrics_calculator", "unimumer.commands.eval:main", _pred,
         lambda t, o, p: ["--input", str(p["in"]), "--output", str(o)],
         lambda t, o, p: ["--input", str(p["in"]), "--output", str(o)]),
    Case("eval_metrics_calculator --per-sample", "unimumer.commands.eval:main", _pred,
         lambda t, o, p: ["--input", str(p["in"]), "--per-sample", str(o)],
         lambda t, o, p: ["--input", str(p["in"]), "--per-sample", str(o)]),
    Case("cdm_eval", "unimumer.commands.cdm:main", _pred,
         lambda t, o, p: ["--input", str(p["in"]), "--output", str(o)],
         lambda t, o, p: ["--input", str(p["in"]), "--output", str(o)]),
    Case("summarize_results --output", "unimumer.commands.summary:main", _pred,
         lambda t, o, p: [str(p["in"]), "--output", str(o)],
         lambda t, o, p: [str(p["in"]), "--output", str(o)]),
    Case("summarize_results --plot", "unimumer.commands.summary:main", _pred,
         lambda t, o, p: [str(p["in"]), "--plot", str(o)],
         lambda t, o, p: [str(p["in"]), "--plot", str(o)]),
    Case("analyze_errors", "unimumer.commands.analyze:main", _analysis_input,
         lambda t, o, p: ["--input", str(o), "--output-dir", str(o.parent)],
         lambda t, o, p: ["--input", str(p["in"]), "--output-dir", str(o)]),
    Case("normalize_latex", "unimumer.commands.normalize:main", _pred,
         lambda t, o, p: ["--input", str(p["in"]), "--output", str(o)],
         lambda t, o, p: ["--input", str(p["in"]), "--output", str(o)]),
    Case("make_unimumer_tree_data", "unimumer.commands.tree:main", _vanilla(),
         lambda t, o, p: ["--task", "tree", "--input", str(p["in"]), "--output", str(o)],
         lambda t, o, p: ["--task", "tree", "--input", str(p["in"]), "--output", str(o / "x.json")]),
    Case("make_unimumer_tree_data (folder, no suffix)", "unimumer.commands.tree:main", _vanilla(),
         lambda t, o, p: ["--task", "can", "--input", str(o.parent), "--suffix", ""],
         lambda t, o, p: ["--task", "can", "--input", str(p["in"].parent), "--output", str(o)], file_output=False),
    Case("build_training_data", "unimumer.commands.build_data:main", _vanilla("crohme_train_tree.json"),
         lambda t, o, p: ["--input", str(o), "--name", "crohme_train", "--output-dir", str(o.parent), "--no-register",
                          "--workers", "1"],
         lambda t, o, p: ["--input", str(p["in"]), "--name", "crohme_train", "--output-dir", str(o), "--no-register",
                          "--workers", "1"]),
    Case("make_hmer_prompts", "unimumer.commands.prompts:main", _captions,
         lambda t, o, p: ["--crohme-dir", str(p["dir"]), "--split", "2014", "--data-root", str(t / "data"),
                          "--out", str(o), "--workers", "1"],
         lambda t, o, p: ["--crohme-dir", str(p["dir"]), "--split", "2014", "--data-root", str(t / "data"),
                          "--out", str(o / "p.json"), "--workers", "1"]),
    Case("make_hmer_prompts --data-root", "unimumer.commands.prompts:main", _captions, None,
         lambda t, o, p: ["--crohme-dir", str(p["dir"]), "--split", "2014", "--data-root", str(o),
                          "--out", str(t / "p.json"), "--workers", "1"]),
    Case("make_error_data", "unimumer.commands.error_data:main", _edl_input,
         lambda t, o, p: ["--input", str(o), "--output-dir", str(o.parent), "--name", "crohme_train", "--no-register"],
         lambda t, o, p: ["--input", str(p["in"]), "--output-dir", str(o), "--name", "crohme_train",
                          "--no-register"]),
    Case("make_mathnet_hmer_data", "unimumer.commands.mathnet:main", _mathnet,
         lambda t, o, p: ["prompt-only", "--input", str(p["in"]), "--output-dir", str(p["dir"]),
                          "--image-base-path", "img"],
         lambda t, o, p: ["process", "--input", str(p["in"]), "--output-dir", str(o), "--image-base-path", "img"],
         file_output=False),
    Case("build_error_corpus", "unimumer.commands.error_corpus:main", _error_corpus,
         lambda t, o, p: ["--train", str(o), "--name", "crohme_train", "--output-dir", str(o.parent), "--no-register",
                          "--base-config", str(REPO / "train" / "Uni-MuMER-train.yaml"), "--model", MISSING_MODEL,
                          "--work-dir", str(t / "work")],
         lambda t, o, p: ["--train", str(p["in"]), "--name", "crohme_train", "--no-register",
                          "--base-config", str(REPO / "train" / "Uni-MuMER-train.yaml"), "--model", MISSING_MODEL,
                          "--work-dir", str(o)], loads_model=True),
    Case("vllm_infer", "unimumer.commands.infer:main", _prompts_dir, None,
         lambda t, o, p: ["--model", MISSING_MODEL, "--input-dir", str(p["dir"]), "--output-dir", str(o)],
         loads_model=True),
    Case("make_tiny_model", "unimumer.commands.tiny_model:main", _tiny, None,
         lambda t, o, p: ["--family", "qwen2_5_vl", "--output", str(o / "tiny")], loads_model=True),
    Case("export_model", "unimumer.commands.export:main", _model_dirs,
         lambda t, o, p: ["--model", str(p["model"]), "--lora", str(p["lora"]), "--output", str(p["model"]),
                          "--overwrite"],
         lambda t, o, p: ["--model", MISSING_MODEL, "--lora", str(p["lora"]), "--output", str(o / "merged")],
         file_output=False, loads_model=True),
    Case("prepare_released_data", "unimumer.commands.prepare_data:main", _released, None,
         lambda t, o, p: ["--source", str(p["in"]), "--output", str(o), "--no-progress"]),
    Case("demo", "unimumer.commands.demo:main", _tiny,
         lambda t, o, p: ["--output-dir", str(REPO / "data")],
         lambda t, o, p: ["--output-dir", str(o)], file_output=False, loads_model=True),
]
IDS = [c.name for c in CASES]
#: entry points that write no file (stdout / a server only): predict.py, serve.py, check_config.py
NO_OUTPUT = {"unimumer.commands.predict:main", "unimumer.commands.serve:main", "unimumer.commands.check_config:main",
             "unimumer.commands.check_data:main"}


def test_the_table_holds_every_cli():
    """Every ``scripts/*.py`` / ``preprocess/*.py`` entry point is in :data:`CASES` or writes no file."""
    import re

    mains = set()
    for script in [*REPO.glob("scripts/*.py"), *REPO.glob("preprocess/*.py")]:
        found = [m for m in re.findall(r"^from (unimumer[\w.]*) import (\w+)", script.read_text(), re.M)
                 if m[0] != "unimumer.cli"]
        assert len(found) == 1, script
        mains.add(":".join(found[0]))
    assert mains - NO_OUTPUT == {c.main for c in CASES}


def _digest(files) -> dict:
    return {str(f): hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files}


def _run(case: Case, argv, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = run_main(_main(case.main), argv)
    err = capsys.readouterr().err
    return code, err


def _assert_refused(code: int, err: str, names: str) -> None:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(errors) == 1, err
    assert names in errors[0], errors[0]


SAME = [(c, how) for c in CASES if c.same is not None
        for how in (("path", "symlink", "hardlink") if c.file_output else ("path",))]  # links: file outputs


@pytest.mark.parametrize("case, how", SAME, ids=[f"{c.name}-{how}" for c, how in SAME])
def test_an_output_that_is_the_input_is_refused(case, how, tmp_path, capsys):
    files, paths = case.setup(tmp_path)
    target = paths.get("in")
    if how != "path":
        link = target.with_name("link_" + target.name)
        (os.symlink if how == "symlink" else os.link)(target, link)
        target = link
    before = _digest(files)
    listing = sorted(p.name for p in tmp_path.rglob("*"))
    code, err = _run(case, case.same(tmp_path, target, paths), capsys)
    _assert_refused(code, err, "input")
    assert _digest(files) == before
    if case.name not in ("make_mathnet_hmer_data",):
        assert sorted(p.name for p in tmp_path.rglob("*")) == listing  # nothing written anywhere


@pytest.fixture(params=["proc", "below_a_file"])
def unwritable(request, tmp_path) -> Path:
    if request.param == "proc":
        return Path("/proc/unimumer-no-such/x")
    f = tmp_path / "a_regular_file"
    f.write_text("x", encoding="utf-8")
    return f / "sub"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_an_output_that_cannot_be_written_is_refused_first(case, unwritable, tmp_path, capsys):
    files, paths = case.setup(tmp_path)
    before = _digest(files)
    code, err = _run(case, case.bad(tmp_path, unwritable, paths), capsys)
    _assert_refused(code, err, "cannot write")
    line = next(x for x in err.splitlines() if x.startswith("error:"))
    # the output's error, not the missing model's: the check comes before any model check or load
    assert line.startswith(f"error: {unwritable}"), line
    if case.loads_model:
        assert MISSING_MODEL not in err, err
    assert _digest(files) == before


def test_the_real_python_entry_point_refuses_its_input_as_output(tmp_path):
    files, paths = _pred(tmp_path)
    before = _digest(files)
    link = tmp_path / "in" / "hard.json"
    os.link(paths["in"], link)
    res = subprocess.run([PY, str(REPO / "preprocess/normalize_latex.py"), "--input", str(paths["in"]),
                          "--output", str(link)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith(f"error: {link}: is the input {paths['in']}"), res.stderr
    assert _digest(files) == before


def test_the_real_eval_script_refuses_an_unwritable_output_before_the_model(tmp_path):
    _, paths = _prompts_dir(tmp_path)
    res = subprocess.run(["bash", str(REPO / "eval/eval_crohme.sh"), "-m", MISSING_MODEL, "-i", str(paths["dir"]),
                          "-o", "/proc/unimumer-no-such/out"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert errors == ["error: /proc/unimumer-no-such/out: cannot write (No such file or directory)"], res.stderr
    assert not Path("/proc/unimumer-no-such").exists()


def test_build_training_data_keeps_an_input_that_is_the_vanilla_file_as_it_is(tmp_path, capsys):
    """The README workflow: build next to make_hmer_prompts' crohme_train.json. The vanilla output is the input:
    it is registered as it is (bytes unchanged, not rewritten); tree / can are written beside it."""
    src = tmp_path / "CROHME" / "train" / "crohme_train.json"
    src.parent.mkdir(parents=True)
    shutil.copy(VANILLA, src)
    before, inode = src.read_bytes(), src.stat().st_ino
    capsys.readouterr()
    assert run_main(_main("unimumer.commands.build_data:main"), ["--input", str(src), "--name", "crohme_train",
                                                          "--workers", "1"]) == 0
    out = capsys.readouterr().out
    n = len(read_json(VANILLA))
    assert src.read_bytes() == before and src.stat().st_ino == inode
    assert f"crohme_train: the input {src} itself, kept as it is ({n} records)" in out
    assert len(read_json(src.with_name("crohme_train_can.json"))) == n
    info = read_json(src.parent / "dataset_info.json")
    assert info["crohme_train"]["file_name"] == "crohme_train.json"
    assert info["crohme_train_tree"]["file_name"] == "crohme_train_tree.json"


# ------------------------------------------------------------------------------------------- eval/*.sh interpreter
def _interpreter(common: Path, env_extra: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"} | env_extra
    res = subprocess.run(["bash", "-c", f'source "{common}"; unimumer_python'], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_eval_scripts_use_the_venv_then_python3(tmp_path):
    common = REPO / "eval" / "common.sh"
    assert (REPO / ".venv" / "bin" / "python").exists()
    assert _interpreter(common, {}) == str(REPO / ".venv" / "bin" / "python")
    assert _interpreter(common, {"PYTHON": "/opt/my/python"}) == "/opt/my/python"
    bare = tmp_path / "checkout" / "eval"  # a checkout without .venv: python3, never a bare `python`
    bare.mkdir(parents=True)
    shutil.copy(common, bare / "common.sh")
    assert _interpreter(bare / "common.sh", {}) == "python3"


# ------------------------------------------------------------------------------------------- empty inputs
@pytest.mark.parametrize("main, argv", [
    ("unimumer.commands.error_data:main", ["--input", "{in}", "--output-dir", "{out}", "--name", "crohme_train", "--no-register"]),
    ("unimumer.commands.tree:main", ["--task", "tree", "--input", "{in}", "--output", "{out}/t.json"]),
    ("unimumer.commands.tree:main", ["--task", "can", "--input", "{in}", "--output", "{out}/c.json", "--strict"]),
    ("unimumer.commands.build_data:main", ["--input", "{in}", "--name", "x_train", "--output-dir", "{out}",
                                      "--no-register", "--workers", "1"]),
    ("unimumer.commands.normalize:main", ["--input", "{in}", "--output", "{out}/n.json"]),
    ("unimumer.commands.eval:main", ["--input", "{in}", "--output", "{out}/r.txt"]),
    ("unimumer.commands.cdm:main", ["--input", "{in}", "--output", "{out}/c.json"]),
    ("unimumer.commands.analyze:main", ["--input", "{in}", "--output-dir", "{out}"]),
], ids=["make_error_data", "tree", "can", "build_training_data", "normalize", "metrics", "cdm", "analysis"])
def test_an_empty_input_array_is_refused_by_every_builder_and_scorer(main, argv, tmp_path, capsys):
    src = tmp_path / "empty.json"
    src.write_text("[]", encoding="utf-8")
    out = tmp_path / "out"
    capsys.readouterr()
    code = run_main(_main(main), [a.format(**{"in": src, "out": out}) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert [line for line in err.splitlines() if line.startswith("error:")] and str(src) in err, err
    assert not out.exists() or not any(out.iterdir())  # no empty output left behind


# ------------------------------------------------------------------------------------------- duplicate img_ids
def test_duplicate_img_ids_are_reported_and_scored_as_officially(tmp_path, capsys):
    from unimumer.evaluation.metrics import evaluate, format_report

    records = read_json(PRED)
    dup = records + records[:3] + records[:1]  # three ids repeated, one of them twice
    src = tmp_path / "dup_pred.json"
    write_json(src, dup, indent=2)
    capsys.readouterr()
    assert run_main(_main("unimumer.commands.eval:main"), ["--input", str(src), "--output", str(tmp_path / "r.txt")]) == 0
    err = capsys.readouterr().err
    ids = [r["img_id"] for r in records[:3]]
    assert f"warning: {src}: 3 img_id(s) occur more than once (4 extra records; first: {', '.join(ids)})" in err
    assert (tmp_path / "r.txt").read_text(encoding="utf-8") == format_report(evaluate(dup))  # numbers unchanged
    capsys.readouterr()
    run_main(_main("unimumer.commands.eval:main"), ["--input", str(PRED), "--json"])
    assert "warning" not in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- vllm_infer rerun
def test_vllm_infer_skips_its_own_outputs_in_the_input_folder(tmp_path, tiny_qwen2_5_vl, crohme_samples):
    """An input folder that is also the output folder: the second run reads the prompt file only (it used to
    fail on the first run's prediction file, "not a ShareGPT record") and says what it skipped."""
    from unimumer.files import sharegpt_record
    from unimumer.tasks import TASKS

    d = tmp_path / "data"
    d.mkdir()
    recs = [sharegpt_record(str(s.path), TASKS["vanilla"].prompt(), s.caption) for s in crohme_samples[:2]]
    write_json(d / "crohme_2014.json", recs)
    cmd = [PY, str(REPO / "scripts/vllm_infer.py"), "--model", str(tiny_qwen2_5_vl), "--backend", "hf",
           "--input-dir", str(d), "--output-dir", str(d), "--max-tokens", "4", "--dtype", "float32",
           "--temperature", "0"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (d / "crohme_2014_pred.json").is_file() and (d / "crohme_2014_pred.run.json").is_file()
    second = subprocess.run(cmd + ["--suffix", "_again"], capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "skipped 2 file(s) this tool wrote in an earlier run" in second.stderr
    assert read_json(d / "crohme_2014_again.json") == read_json(d / "crohme_2014_pred.json")
    assert "crohme_2014_pred_again.json" not in os.listdir(d)


# ------------------------------------------------------------------------------------------- predict.py errors
def test_predict_names_the_file_of_an_image_the_processor_refuses(tmp_path, tiny_qwen2_5_vl, capsys):
    from PIL import Image

    wide = tmp_path / "wide.png"
    Image.new("L", (4000, 10), 255).save(wide)
    capsys.readouterr()
    code = run_main(_main("unimumer.commands.predict:main"),
                    [str(wide), "--model", str(tiny_qwen2_5_vl), "--backend", "hf", "--max-tokens", "4",
                     "--dtype", "float32"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"error: {wide}: " in err and "aspect ratio" in err, err


# ------------------------------------------------------------------------------------------- progress bars
def test_long_work_shows_progress_on_a_terminal_only(tmp_path):
    """normalize_latex, analyze_errors, the metrics on a large file and make_hmer_prompts' caption scan draw a tqdm
    bar on stderr when it is a terminal (a pty here) and print none otherwise (the project's convention)."""
    import fcntl
    import pty
    import struct
    import termios

    big = tmp_path / "big_pred.json"
    records = read_json(PRED)
    write_json(big, (records * (20000 // len(records) + 1))[:20000], indent=2)
    script = tmp_path / "run.py"
    script.write_text(f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from unimumer.cli import run_main
from unimumer.commands.normalize import main as main_normalize
from unimumer.commands.prompts import main as main_prompts
from unimumer.commands.analyze import main as analysis
from unimumer.commands.eval import main as metrics
t = {str(tmp_path)!r}
codes = [run_main(main_normalize, ["--input", {str(PRED)!r}, "--output", t + "/n.json"]),
         run_main(analysis, ["--input", {str(PRED)!r}, "--output-dir", t + "/a"]),
         run_main(metrics, ["--input", {str(big)!r}, "--output", t + "/r.txt"]),
         run_main(main_prompts, ["--crohme-dir", {str(CAPTIONS)!r}, "--split", "2014", "--data-root", t + "/d",
                                 "--workers", "1", "--limit", "3"])]
print("codes", codes, file=sys.stderr)
""", encoding="utf-8")
    labels = ("normalize crohme_2014_pred.json", "analysing", "scoring big_pred.json", "CROHME/2014 captions")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))  # a 0-column pty draws no bar
    proc = subprocess.Popen([PY, str(script)], stdout=subprocess.DEVNULL, stderr=slave, cwd=tmp_path)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert "codes [0, 0, 0, 0]" in shown, shown[-2000:]
    for label in labels:
        assert f"{label}:" in shown, (label, shown[-3000:])
    for f in ("n.json", "r.txt"):
        (tmp_path / f).unlink()
    shutil.rmtree(tmp_path / "a")
    shutil.rmtree(tmp_path / "d")
    plain = subprocess.run([PY, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert "codes [0, 0, 0, 0]" in plain.stderr
    assert not any(f"{label}:" in plain.stderr for label in labels), plain.stderr
