"""The prediction-file layout (unimumer.layout): names beside a prediction file and the one finder, on the
official prediction files (tests/fixtures/reference)."""
import shutil
from pathlib import Path

import pytest

from unimumer.errors import InputError
from unimumer.layout import find_predictions, progress_path, run_record_path, stem_of

REF = Path(__file__).parent / "fixtures" / "reference"


def test_names():
    assert stem_of("d/crohme_2014_pred.json") == "crohme_2014" and stem_of("crohme_2014.json") == "crohme_2014"
    assert stem_of("_pred.json") == "_pred"
    assert run_record_path(Path("o/crohme_2014_pred.json")) == Path("o/crohme_2014_pred.run.json")
    assert progress_path("o", "crohme_2014", "_pred") == Path("o/.crohme_2014_pred.progress.jsonl")


@pytest.fixture
def tree(tmp_path):
    """root/a_pred.json, root/notes.json, root/run/b_pred.json; paper/ holds only paper_final-named files."""
    pred = REF / "predictions" / "crohme2023_test_pred.json"
    (tmp_path / "root" / "run").mkdir(parents=True)
    shutil.copy(pred, tmp_path / "root" / "a_pred.json")
    shutil.copy(pred, tmp_path / "root" / "notes.json")
    shutil.copy(pred, tmp_path / "root" / "run" / "b_pred.json")
    shutil.copytree(REF / "paper_final", tmp_path / "paper")
    return tmp_path


def test_find_predictions_modes(tree):
    root = tree / "root"
    assert find_predictions(root) == [root / "a_pred.json"]
    assert find_predictions(root, recursive=True) == [root / "a_pred.json", root / "run" / "b_pred.json"]
    assert find_predictions(root, any_json=True) == [root / "a_pred.json"]  # *.json only when no *_pred.json
    paper = tree / "paper"
    assert [f.name for f in find_predictions(paper, any_json=True)] == [
        "crohme_2014.json", "crohme_2016.json", "crohme_2019.json"]
    assert find_predictions(root / "notes.json") == [root / "notes.json"]  # a file is taken as given


def test_find_predictions_errors(tree):
    with pytest.raises(InputError, match="missing: file not found"):
        find_predictions(tree / "missing")
    with pytest.raises(InputError, match=r"no \*_pred.json prediction files in this folder"):
        find_predictions(tree / "paper")
    with pytest.raises(InputError, match="below this folder"):
        find_predictions(tree / "paper", recursive=True)
    (tree / "empty").mkdir()
    with pytest.raises(InputError, match=r"no \*_pred.json / \*.json prediction files"):
        find_predictions(tree / "empty", any_json=True)
