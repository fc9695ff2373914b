"""The shared core: task registry, JSON / ShareGPT I/O, dataset registry merging, CLI error mapping."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from unimumer import files, tasks
from unimumer.cli import run_main
from unimumer.errors import InputError

TREE_COT = Path(__file__).parent / "fixtures" / "reference" / "tree_cot"  # official examples (fixtures/README.md)
SPEC_PROMPTS = {  # the official prompts (exact strings of the released prompt and training files)
    "vanilla": "I have an image of a handwritten mathematical expression. Please write out the expression of the "
    "formula in the image using LaTeX format.",
    "tree": "I have an image of a handwritten mathematical expression. Please generate the abstract syntax tree (AST) "
    "of the formula in the image, and then provide its corresponding LaTeX format.",
    "can": "I have an image of a handwritten mathematical expression. Please identify and count each distinct visible "
    "mathematical symbol in the image, and then provide its corresponding LaTeX format.",
    "error_find": "I have an image of a handwritten mathematical expression and its OCR recognition result. Please "
    "help me to detect possible errors in the recognition result and mark the places where errors occur with "
    "<error_start> <error_end> and <deleted>.\nExpression: x + 1",
    "error_fix": "I have an image of a handwritten mathematical expression and its OCR recognition result. Please "
    "correct the errors marked <error_start> <error_end> and <deleted> and give the correct mathematical "
    "expression.\nMarked Expression: x <deleted> 1",
}


def test_prompts_are_the_spec_strings():
    assert tasks.TASKS["vanilla"].prompt() == SPEC_PROMPTS["vanilla"]
    assert tasks.TASKS["tree"].prompt() == SPEC_PROMPTS["tree"]
    assert tasks.TASKS["can"].prompt() == SPEC_PROMPTS["can"]
    assert tasks.TASKS["error_find"].prompt(candidate="x + 1") == SPEC_PROMPTS["error_find"]
    assert tasks.TASKS["error_fix"].prompt(marked="x <deleted> 1") == SPEC_PROMPTS["error_fix"]
    with pytest.raises(InputError, match="candidate"):
        tasks.TASKS["error_find"].prompt()


def test_official_vanilla_prompt_matches_reference_file():
    data = json.loads((TREE_COT / "sample_input.json").read_text())
    image, prompt, _ = files.sharegpt_fields(data[0])
    assert prompt == SPEC_PROMPTS["vanilla"]
    tree = json.loads((TREE_COT / "sample_tree.json").read_text())
    assert files.sharegpt_fields(tree[0])[1] == SPEC_PROMPTS["tree"]
    can = json.loads((TREE_COT / "sample_can.json").read_text())
    assert files.sharegpt_fields(can[0])[1] == SPEC_PROMPTS["can"]


@pytest.mark.parametrize("name", list(SPEC_PROMPTS))
def test_task_for_prompt_round_trip(name):
    t = tasks.TASKS[name]
    assert tasks.task_for_prompt("<image>" + SPEC_PROMPTS[name]) is t


def test_task_for_prompt_unknown():
    with pytest.raises(InputError):
        tasks.task_for_prompt("<image>Describe this picture.")


def test_dataset_names_follow_the_official_list():
    official = set(
        "crohme2023 crohme2023_can crohme2023_error_find crohme2023_error_fix crohme2023_tree crohme_train "
        "crohme_train_can crohme_train_error_find crohme_train_error_fix crohme_train_tree hme100k_error_find "
        "hme100k_error_fix hme100k_train hme100k_train_can hme100k_train_tree im2latex_v2_error_find "
        "im2latex_v2_error_fix im2latex_v2_train im2latex_v2_train_can im2latex_v2_train_tree mathwriting_symbols "
        "mathwriting_train mathwriting_train_can mathwriting_train_error_find mathwriting_train_error_fix "
        "mathwriting_train_tree".split()
    )
    built = {"mathwriting_symbols"}
    for base in ("crohme2023", "crohme_train", "hme100k_train", "im2latex_v2_train", "mathwriting_train"):
        built |= {tasks.dataset_name(base, t) for t in tasks.TASKS}
    assert built == official


def test_answer_extraction():
    tree_out = "\\frac\n\ta (above)\n\tb (below)\n\\frac { a } { b }\n"
    assert tasks.TASKS["tree"].extract_answer(tree_out) == "\\frac { a } { b }"
    assert tasks.TASKS["can"].extract_answer("a: 1, +: 1, b: 1\na + b\n\n") == "a + b"
    assert tasks.TASKS["error_fix"].extract_answer("REPLACE: x -> y\ny + 1") == "y + 1"
    assert tasks.TASKS["vanilla"].extract_answer("  x ^ { 2 }\n") == "x ^ { 2 }"
    assert tasks.TASKS["error_find"].extract_answer(" <error_start> x <error_end> + 1 ") == "<error_start> x <error_end> + 1"
    assert tasks.TASKS["tree"].extract_answer("") == ""


def test_write_json_stream_is_byte_identical(tmp_path):
    records = json.loads((TREE_COT / "sample_tree.json").read_text())
    records.append({"gt": "中文 \\alpha", "nested": {"a": [1, 2, {"b": None}]}})
    out = tmp_path / "s.json"
    n = files.write_json_stream(out, iter(records))
    assert n == len(records)
    assert out.read_text(encoding="utf-8") == json.dumps(records, ensure_ascii=False, indent=4)
    files.write_json_stream(tmp_path / "e.json", iter([]))
    assert (tmp_path / "e.json").read_text() == json.dumps([], indent=4)
    # the official sample file itself is reproduced byte for byte
    src = (TREE_COT / "sample_tree.json").read_text(encoding="utf-8")
    files.write_json_stream(out, iter(json.loads(src)))
    assert out.read_text(encoding="utf-8") == src


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    def gen():
        yield {"a": 1}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        files.write_json_stream(tmp_path / "x.json", gen())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content, message",
    [(None, "file not found"), ("{not json", "not valid JSON"), ('{"a": 1}', "expected a JSON array"), ("[]", "empty")],
)
def test_read_json_list_errors(tmp_path, content, message):
    p = tmp_path / "in.json"
    if content is not None:
        p.write_text(content)
    with pytest.raises(InputError, match=message):
        files.read_json_list(p)


def test_register_datasets_merges(tmp_path):
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps({"mine": {"file_name": "mine.json", "ranking": True}}))
    files.register_datasets(info, {"crohme_train": "CROHME/crohme_train.json"})
    files.register_datasets(info, {"crohme_train_tree": "CROHME/crohme_train_tree.json"})
    data = json.loads(info.read_text())
    assert data["mine"] == {"file_name": "mine.json", "ranking": True}
    assert data["crohme_train"] == {
        "file_name": "CROHME/crohme_train.json",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
    }
    assert list(data) == ["mine", "crohme_train", "crohme_train_tree"]


def test_sharegpt_round_trip_and_errors():
    rec = files.sharegpt_record("./data/x.png", "prompt text", "x + 1")
    assert rec["messages"][0]["value"] == "<image>prompt text"
    assert files.sharegpt_fields(rec) == ("./data/x.png", "prompt text", "x + 1")
    with pytest.raises(InputError, match="record 7"):
        files.sharegpt_fields({"messages": []}, 7)


def test_run_main_maps_input_errors(capsys):
    def main(argv):
        raise InputError("data.json: file not found")

    assert run_main(main, []) == 2
    assert capsys.readouterr().err == "error: data.json: file not found\n"
    assert run_main(lambda argv: None, []) == 0


def test_metrics_free_modules_do_not_import_torch():
    code = "import sys, unimumer.tasks, unimumer.files, unimumer.images, unimumer.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
