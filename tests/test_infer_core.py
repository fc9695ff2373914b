"""Engine-free parts of inference (unimumer.inference.jobs / progress / runner): prompt files, official record layout, answer
extraction for every task, sharding, GPU groups, the resumable progress file, and CLI errors raised before any
engine starts. Real data: the official prediction files and Tree-CoT / counting outputs in tests/fixtures."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
from pathlib import Path

import pytest

from unimumer.cli import run_main
from unimumer.commands.infer import main as infer_main
from unimumer.edl.marking import build_error_find, build_error_fix
from unimumer.errors import InputError
from unimumer.files import read_json, sharegpt_record, write_json
from unimumer.inference import jobs, progress
from unimumer.tasks import TASKS

FIX = Path(__file__).parent / "fixtures" / "reference"
REPO = Path(__file__).resolve().parents[1]


def _prompt_file(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    write_json(path, [sharegpt_record(img, prompt, gt) for img, prompt, gt in rows])
    return path


# ------------------------------------------------------------------------------------------- prompt files
def test_read_prompt_file_fields_and_task_detection(tmp_path):
    van, tree = TASKS["vanilla"].prompt(), TASKS["tree"].prompt()
    p = _prompt_file(tmp_path / "x.json", [("./a/1.jpg", van, " a + b \n"), ("/abs/2.png", tree + " ", "T\nc")])
    items = jobs.read_prompt_file(p)
    assert [(i.index, i.image_path, i.prompt, i.gt, i.task.name) for i in items] == [
        (0, "./a/1.jpg", van, "a + b", "vanilla"),
        (1, "/abs/2.png", tree, "T\nc", "tree"),
    ]
    assert {i.task.name for i in jobs.read_prompt_file(p, task="can")} == {"can"}


def test_read_prompt_file_errors_name_file_and_record(tmp_path):
    p = _prompt_file(tmp_path / "bad.json", [("a.jpg", TASKS["vanilla"].prompt(), "x"), ("b.jpg", "What is this?", "y")])
    with pytest.raises(InputError, match=r"bad.json: record 1: .*--task"):
        jobs.read_prompt_file(p)
    assert len(jobs.read_prompt_file(p, task="vanilla")) == 2
    write_json(tmp_path / "broken.json", [{"images": ["a.jpg"], "messages": [{"from": "human", "value": "x"}]}])
    with pytest.raises(InputError, match=r"broken.json: record 0"):
        jobs.read_prompt_file(tmp_path / "broken.json")
    write_json(tmp_path / "obj.json", {"a": 1})
    with pytest.raises(InputError, match="expected a JSON array"):
        jobs.read_prompt_file(tmp_path / "obj.json")


def test_list_prompt_files(tmp_path):
    with pytest.raises(InputError, match="input folder not found"):
        jobs.list_prompt_files(tmp_path / "nope")
    with pytest.raises(InputError, match="no \\*.json"):
        jobs.list_prompt_files(tmp_path)
    for name in ("crohme_2019.json", "crohme_2014.json", "notes.txt"):
        (tmp_path / name).write_text("[]")
    assert [f.name for f in jobs.list_prompt_files(tmp_path)] == ["crohme_2014.json", "crohme_2019.json"]


def test_resolve_image(tmp_path):
    assert jobs.resolve_image("./data/x.jpg", None) == Path("./data/x.jpg")
    assert jobs.resolve_image("./data/x.jpg", tmp_path) == tmp_path / "data/x.jpg"
    assert jobs.resolve_image("/abs/x.jpg", tmp_path) == Path("/abs/x.jpg")


# ------------------------------------------------------------------------------------------- record layout
@pytest.mark.parametrize("name", ["crohme_2014_pred.json", "crohme2023_test_pred.json"])
def test_records_reproduce_official_prediction_file_byte_for_byte(tmp_path, name):
    """Rebuilding every official record from (gt, image_path, model output) gives the released file exactly."""
    official = FIX / "predictions" / name
    recs = read_json(official)
    prompts = _prompt_file(tmp_path / "p.json", [(r["image_path"], TASKS["vanilla"].prompt(), r["gt"]) for r in recs])
    items = jobs.read_prompt_file(prompts)
    ours = [jobs.make_record(it, r["pred"] + "\n") for it, r in zip(items, recs, strict=True)]
    assert all("error" not in r for r in ours)
    out = progress.write_predictions(tmp_path / name, ours)
    assert out.read_bytes() == official.read_bytes()


def test_error_records_and_raw_output():
    item = jobs.PromptItem(3, "./data/CROHME/2014/images/18_em_0.jpg", "p", "x ^ { 2 }", TASKS["vanilla"])
    assert jobs.make_record(item, None, "image not found: ./x.jpg") == {
        "gt": "x ^ { 2 }", "pred": "", "image_path": item.image_path, "img_id": "18_em_0",
        "error": "image not found: ./x.jpg",
    }
    assert jobs.make_record(item, " \n\t")["error"] == "empty output"
    rec = jobs.make_record(item, " x ^ { 2 } \n", raw=True)
    assert list(rec) == ["gt", "pred", "image_path", "img_id", "output"] and rec["pred"] == "x ^ { 2 }"
    assert progress.error_summary([rec, jobs.make_record(item, ""), jobs.make_record(item, None, "image not found: a"),
                               jobs.make_record(item, None, "image not found: b")]) == {
        "empty output": 1, "image not found": 2}


# ------------------------------------------------------------------------------------------- answer extraction
@pytest.mark.parametrize("task,target_file", [("tree", "crohme_2014_tree.json"), ("can", "crohme_2014_can.json")])
def test_answer_extraction_tree_and_counting(tmp_path, task, target_file):
    """The official Tree-CoT / counting targets of CROHME 2014, used as model outputs, give back the LaTeX."""
    targets = read_json(FIX / "tree_cot" / target_file)
    gts = [r["messages"][1]["value"] for r in read_json(FIX / "tree_cot" / "crohme_2014_input.json")]
    items = jobs.read_prompt_file(FIX / "tree_cot" / target_file)  # task detected from the official prompts
    assert {i.task.name for i in items} == {task}
    preds = [jobs.make_record(it, rec["messages"][1]["value"])["pred"] for it, rec in zip(items, targets, strict=True)]
    assert preds == [g.strip() for g in gts]


def test_answer_extraction_error_tasks(tmp_path):
    """error_fix: the gt on the last line of the correction log; error_find: the whole marked expression."""
    recs = [r for r in read_json(FIX / "predictions" / "crohme_2014_pred.json") if r["pred"].split() != r["gt"].split()]
    rows_fix, rows_find, marked = [], [], []
    for r in recs:
        p_fix, t_fix = build_error_fix(r["gt"], r["pred"])
        p_find, t_find = build_error_find(r["gt"], r["pred"])
        rows_fix.append((r["image_path"], p_fix, r["gt"]))
        rows_find.append((r["image_path"], p_find, t_find))
        marked.append((t_fix, t_find))
    fix_items = jobs.read_prompt_file(_prompt_file(tmp_path / "fix.json", rows_fix))
    find_items = jobs.read_prompt_file(_prompt_file(tmp_path / "find.json", rows_find))
    assert {i.task.name for i in fix_items} == {"error_fix"} and {i.task.name for i in find_items} == {"error_find"}
    assert len(recs) > 100
    for it_fix, it_find, r, (t_fix, t_find) in zip(fix_items, find_items, recs, marked, strict=True):
        assert jobs.make_record(it_fix, t_fix + "\n")["pred"] == " ".join(r["gt"].split())
        assert jobs.make_record(it_find, t_find)["pred"] == t_find.strip()


def test_vanilla_keeps_multiline_output_whole():
    item = jobs.PromptItem(0, "a.png", "p", "g", TASKS["vanilla"])
    assert jobs.make_record(item, "\\begin {cases}\nx \\\\\ny \\end {cases}\n")["pred"] == (
        "\\begin {cases}\nx \\\\\ny \\end {cases}")


# ------------------------------------------------------------------------------------------- sharding / GPUs
def test_shards_partition_in_input_order():
    idx = list(range(11))
    shards = [jobs.shard(idx, 3, k) for k in range(3)]
    assert shards[0] == [0, 3, 6, 9]
    assert sorted(sum(shards, [])) == idx
    with pytest.raises(InputError):
        jobs.shard(idx, 2, 2)


def test_device_groups_subset_the_users_selection():
    assert jobs.visible_devices({"CUDA_VISIBLE_DEVICES": "3,5, 6,7"}) == ["3", "5", "6", "7"]
    assert jobs.visible_devices({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert jobs.visible_devices({}, device_count=2) == ["0", "1"]
    assert jobs.visible_devices({}) is None
    assert jobs.device_groups(["3", "5", "6", "7"], 2, 2) == ["3,5", "6,7"]
    assert jobs.device_groups(["3", "5", "6", "7"], 4, 1) == ["3", "5", "6", "7"]
    assert jobs.device_groups(["3", "5", "6"], 1, 2) == ["3,5"]
    assert jobs.device_groups([], 2, 1) == ["", ""]  # CPU: every worker stays without GPU
    assert jobs.device_groups(None, 2, 1) == [None, None]
    with pytest.raises(InputError, match="needs 4 GPUs, only 3 visible"):
        jobs.device_groups(["0", "1", "2"], 2, 2)


# ------------------------------------------------------------------------------------------- progress file
def _items(n: int) -> list[jobs.PromptItem]:
    return [jobs.PromptItem(i, f"./img/{i}.png", "p", f"g{i}", TASKS["vanilla"]) for i in range(n)]


def test_progress_roundtrip_and_truncated_line(tmp_path):
    items = _items(5)
    pf = progress.ProgressFile(tmp_path / ".x_pred.progress.jsonl")
    assert pf.load(items, "x.json", {"a": 1}) == {}
    pf.create("x.json", 5, {"a": 1})
    pf.append([(3, jobs.make_record(items[3], "b")), (0, jobs.make_record(items[0], "a"))])
    with pf.path.open("a") as fh:
        fh.write('{"index": 1, "record": {"gt"')  # a write cut short by a kill
    done = pf.load(items, "x.json", {"a": 1})
    assert sorted(done) == [0, 3] and done[3]["pred"] == "b"
    pf.append([(1, jobs.make_record(items[1], "c"))])  # the resumed run's records start on a new line
    done = pf.load(items, "x.json", {"a": 1})
    assert sorted(done) == [0, 1, 3] and done[1]["pred"] == "c"
    pf.remove()
    assert not pf.path.exists()


def test_progress_refuses_other_settings_or_input(tmp_path):
    items = _items(3)
    pf = progress.ProgressFile(tmp_path / "p.jsonl")
    pf.create("x.json", 3, {"temperature": 0.2, "model": "m"})
    pf.append([(1, jobs.make_record(items[1], "a"))])
    with pytest.raises(InputError, match=r"other settings \(temperature: 0.2 -> 0.0\)"):
        pf.load(items, "x.json", {"temperature": 0.0, "model": "m"})
    with pytest.raises(InputError, match="written for 'x.json' with 3 records"):
        pf.load(_items(4), "x.json", {"temperature": 0.2, "model": "m"})
    moved = [jobs.PromptItem(i, f"./other/{i}.png", "p", "g", TASKS["vanilla"]) for i in range(3)]
    with pytest.raises(InputError, match="record 1 is for './img/1.png'"):
        pf.load(moved, "x.json", {"temperature": 0.2, "model": "m"})


def test_failed_records_are_not_finished_work(tmp_path):
    """A record with an ``error`` is redone: its retry (a later line) wins; a file holding no finished record
    has nothing to keep, so other settings start it again instead of refusing."""
    items = _items(2)
    pf = progress.ProgressFile(tmp_path / "p.jsonl")
    pf.create("x.json", 2, {"image_root": "/wrong"})
    pf.append([(0, jobs.make_record(items[0], None, "image not found: ./img/0.png"))])
    assert not progress.is_finished(pf.load(items, "x.json", {"image_root": "/wrong"})[0])
    assert pf.load(items, "x.json", {"image_root": "/right"}) == {} and pf.stale
    assert pf.resume(items, "x.json", {"image_root": "/right"}) == {} and not pf.path.read_text().count("/wrong")
    pf.append([(0, jobs.make_record(items[0], None, "image not found: ./img/0.png"))])
    pf.append([(0, jobs.make_record(items[0], "a"))])
    done = pf.load(items, "x.json", {"image_root": "/right"})
    assert done[0]["pred"] == "a" and progress.is_finished(done[0]) and not pf.stale
    with pytest.raises(InputError, match="other settings"):  # a finished record is never mixed with other settings
        pf.resume(items, "x.json", {"image_root": "/elsewhere"})


def test_image_problems_say_what_and_where(tmp_path):
    from PIL import Image

    from unimumer.inference.runner import image_problem

    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop2.png")
    (tmp_path / "loop2.png").symlink_to(tmp_path / "loop.png")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    (tmp_path / "folder.png").mkdir()

    def problem(path, root=tmp_path):
        return image_problem(jobs.PromptItem(0, path, "p", "g", TASKS["vanilla"]), root)

    assert problem("ok.png") is None and problem(str(tmp_path / "ok.png"), "/nowhere") is None
    assert problem("./sub/missing.png") == f"image not found: ./sub/missing.png (looked for {tmp_path}/sub/missing.png)"
    assert problem("loop.png") == f"symlink loop: loop.png (looked for {tmp_path}/loop.png)"
    assert problem("dangling.png") == (f"image not found: dangling.png (looked for {tmp_path}/dangling.png) "
                                       "(a symlink to a missing file)")
    assert problem("folder.png") == f"not a file: folder.png (looked for {tmp_path}/folder.png)"
    assert progress.error_summary([{"error": problem("loop.png")}, {"error": problem("x.png")}]) == {
        "symlink loop": 1, "image not found": 1}


def _append_many(path: str, worker: int) -> None:
    items = _items(400)
    pf = progress.ProgressFile(path)
    for i in range(worker, 400, 2):
        pf.append([(i, jobs.make_record(items[i], "x " * 50))])


def test_progress_concurrent_appends_from_two_processes(tmp_path):
    path = tmp_path / "p.jsonl"
    progress.ProgressFile(path).create("x.json", 400, {})
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), k)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0]
    lines = path.read_text().splitlines()
    assert len(lines) == 401 and all(json.loads(line) for line in lines)
    assert sorted(progress.ProgressFile(path).load(_items(400), "x.json", {})) == list(range(400))


# ------------------------------------------------------------------------------------------- CLI errors
def _run(argv, capsys):
    code = run_main(infer_main, argv)
    return code, capsys.readouterr().err


def test_cli_input_errors_before_any_engine(tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(["--model", "m", "--input-dir", str(tmp_path / "none"), "--output-dir", str(out)], capsys)
    assert code == 2 and err.startswith("error: ") and "input folder not found" in err and "Traceback" not in err
    inp = tmp_path / "in"
    inp.mkdir()
    _prompt_file(inp / "a.json", [("x.png", TASKS["vanilla"].prompt(), "x")])
    (inp / "b.json").write_text("[{")
    code, err = _run(["--model", "m", "--input-dir", str(inp), "--output-dir", str(out)], capsys)
    assert code == 2 and "b.json: not valid JSON" in err
    assert not out.exists()  # validated before anything is written
    (inp / "b.json").unlink()
    for bad, msg in ((["--data-parallel-size", "0"], "--data-parallel-size must be >= 1"),
                     (["--preprocessing", "training", "--min-pixels", "9", "--max-pixels", "4"],
                      "--min-pixels must not exceed"),
                     (["--min-pixels", "9"], "apply to --preprocessing training only"),
                     (["--backend", "hf", "--tensor-parallel-size", "2"], "--backend vllm only")):
        code, err = _run(["--model", "m", "--input-dir", str(inp), "--output-dir", str(out), *bad], capsys)
        assert code == 2 and msg in err


def test_cli_refuses_to_mix_a_progress_file_from_other_settings(tmp_path, capsys):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    _prompt_file(inp / "a.json", [("x.png", TASKS["vanilla"].prompt(), "x")])
    pf = progress.ProgressFile(progress.progress_path(out, "a", "_pred"))
    pf.create("a.json", 1, {"temperature": 0.9})
    pf.append([(0, jobs.make_record(jobs.read_prompt_file(inp / "a.json")[0], "x"))])
    code, err = _run(["--model", "m", "--input-dir", str(inp), "--output-dir", str(out)], capsys)
    assert code == 2 and "other settings" in err and "--overwrite" in err


def test_cli_run_where_every_image_is_missing_fails_and_records_the_image_root(tmp_path, capsys, monkeypatch):
    """No image found (a run from the wrong folder): no engine starts, every record says where it looked, the
    run exits 2 with one error line, and the resolved image root is part of the run's settings."""
    inp, out, run_dir = tmp_path / "in", tmp_path / "out", tmp_path / "run"
    inp.mkdir()
    run_dir.mkdir()
    van = TASKS["vanilla"].prompt()
    _prompt_file(inp / "a.json", [("./data/x.png", van, "x"), ("./data/y.png", van, "y")])
    monkeypatch.chdir(run_dir)
    code, err = _run(["--model", "m", "--input-dir", str(inp), "--output-dir", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith(
        "error: a: all 2 records failed (2 image not found; image root "
        f"{run_dir.resolve()}; first: image not found: ./data/x.png (looked for {run_dir.resolve()}/data/x.png))")
    recs = read_json(out / "a_pred.json")
    assert [r["error"] for r in recs] == [f"image not found: ./data/{n}.png (looked for {run_dir.resolve()}/data/{n}.png)"
                                          for n in "xy"]
    run = read_json(out / "a_pred.run.json")
    assert run["settings"]["image_root"] == str(run_dir.resolve()) and not progress.progress_path(out, "a", "_pred").exists()
    # the same from another folder: the failed records are redone (nothing of the first run is kept, no refusal)
    code, err = _run(["--model", "m", "--input-dir", str(inp), "--output-dir", str(out), "--image-root",
                      str(tmp_path)], capsys)
    assert code == 2 and f"image root {tmp_path.resolve()};" in err
    assert read_json(out / "a_pred.run.json")["settings"]["image_root"] == str(tmp_path.resolve())


def test_cli_help_documents_formats():
    res = subprocess.run([str(REPO / ".venv/bin/python"), str(REPO / "scripts/vllm_infer.py"), "--help"],
                         capture_output=True, text=True, check=True)
    for word in ("--input-dir", "--suffix", "--batch_size", "--data-parallel-size", "progress.jsonl", '"error"',
                 "_results.txt", "--backend", "--image-root", "CUDA_VISIBLE_DEVICES"):
        assert word in res.stdout


def test_cli_unloadable_model_is_an_input_error(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    _prompt_file(inp / "a.json", [("x.png", TASKS["vanilla"].prompt(), "x")])
    for script, args in (("vllm_infer.py", ["--input-dir", str(inp), "--output-dir", str(tmp_path / "o")]),
                         ("predict.py", [str(tmp_path / "x.png"), "--backend", "hf"])):
        res = subprocess.run([str(REPO / ".venv/bin/python"), str(REPO / "scripts" / script), "--model",
                              str(tmp_path / "no_model"), *args], capture_output=True, text=True)
        assert res.returncode == 2 and "no such model folder" in res.stderr
        assert "Traceback" not in res.stderr


# ------------------------------------------------------------------------------------------- eval scripts
def test_eval_scripts_usage_errors(tmp_path):
    res = subprocess.run(["bash", str(REPO / "eval/eval_all.sh")], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2 and "-m/--model is required" in res.stderr
    res = subprocess.run(["bash", str(REPO / "eval/eval_all.sh"), "-m", "x", "-d", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2 and "no dataset found" in res.stderr
    assert res.stdout.count("[SKIP]") == 6
    res = subprocess.run(["bash", str(REPO / "eval/eval_crohme.sh"), "-m", "x", "-i", str(tmp_path / "no")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2 and "input folder not found" in res.stderr
    for script in (REPO / "eval").glob("*.sh"):  # the caller's GPU selection is never overwritten
        assert "export CUDA_VISIBLE_DEVICES" not in script.read_text()
