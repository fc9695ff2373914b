"""Settings declared once (unimumer.inference.settings): flags from the dataclass fields, the run fingerprint from
the dataclass, workers / children rebuilding the settings from ``asdict()``. Pure Python, no engine."""
import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from unimumer.commands.infer import build_parser, check_args
from unimumer.errors import InputError
from unimumer.inference.runner import run_settings, settings_fingerprint, settings_from_config, worker_config
from unimumer.inference.settings import Default, GenerationSettings

ROOT = Path(__file__).resolve().parents[1]


def _infer_args(*argv: str) -> argparse.Namespace:
    a = build_parser().parse_args(list(argv))
    check_args(a)
    a.resolved_image_root = "/r"
    return a


# fingerprints written by the runner before the settings were declared on the dataclasses: a run started then
# must still resume (same .run.json settings, same fingerprint)
EARLIER_FINGERPRINTS = [
    (["--model", "Org/Model"], "ae0c4b9d2d20a8b9"),
    (["--model", "Org/Model", "--temperature", "0", "--seed", "3", "--task", "tree", "--save-raw", "--dtype",
      "float32"], "944e877a80fafe91"),
    (["--model", "Org/Model", "--preprocessing", "training", "--max-pixels", "5000", "--template", "qwen2_vl"],
     "ac9956399b3647cf"),
    (["--backend", "openai", "--base-url", "http://127.0.0.1:1/v1/", "--api-model", "m", "--api-key-env",
      "UNIMUMER_TEST_KEY"], "c1de6e73223247a5"),
]


@pytest.mark.parametrize("argv,fingerprint", EARLIER_FINGERPRINTS)
def test_run_fingerprint_is_unchanged_for_earlier_runs(argv, fingerprint, monkeypatch):
    monkeypatch.setenv("UNIMUMER_TEST_KEY", "k")
    settings = run_settings(_infer_args(*argv))
    assert settings_fingerprint(settings) == fingerprint
    # the .run.json keeps its key order: common decoding settings first, the input mode's own ones last
    tail = list(settings)[-3:]
    assert tail == (["template", "min_pixels", "max_pixels"] if "training" in argv else tail)


def test_defaults_and_reasons_per_command():
    infer_help = build_parser().format_help()
    from unimumer.commands.predict import build_parser as predict_parser

    predict = predict_parser()
    assert build_parser().parse_args(["--model", "m"]).temperature == 0.2  # the released script's default
    assert predict.parse_args(["x.png", "--model", "m"]).temperature == 0.0
    assert "released scripts/vllm_infer.py's default" in " ".join(infer_help.split())
    assert "greedy here" in " ".join(predict.format_help().split())
    # --dtype choices come from one tuple, on every command
    for p in (build_parser(), predict):
        dtype = next(a for a in p._actions if "--dtype" in a.option_strings)
        assert tuple(dtype.choices) == ("auto", "bfloat16", "float16", "float32")


def test_mode_fields_and_checks():
    with pytest.raises(InputError, match="--min-pixels / --max-pixels / --template apply to --preprocessing "
                                         "training only"):
        _infer_args("--model", "m", "--max-pixels", "100")
    a = _infer_args("--model", "m", "--preprocessing", "training", "--max-pixels", "5000")
    assert (a.generation.min_pixels, a.generation.max_pixels) == (1024, 5000)  # left out -> dataclass default
    assert GenerationSettings().as_dict() == {"max_tokens": 2048, "temperature": 0.2, "top_p": 0.8, "top_k": 50,
                                              "seed": 0, "preprocessing": "official"}
    with pytest.raises(InputError, match="--top-p must be in"):
        _infer_args("--model", "m", "--top-p", "0")
    with pytest.raises(TypeError, match="no such option"):
        GenerationSettings.add_cli_args(argparse.ArgumentParser(), temprature=Default(1.0, "typo"))


def test_worker_and_child_rebuild_the_same_settings():
    a = _infer_args("--model", "m", "--preprocessing", "training", "--template", "qwen2_vl", "--seed", "7",
                    "--dtype", "float32", "--enforce-eager")
    generation, engine, endpoint = settings_from_config(json.loads(json.dumps(worker_config(a))))
    assert (generation, engine, endpoint) == (a.generation, a.engine, a.endpoint)
    assert engine.enforce_eager and engine.dtype == "float32" and generation.template == "qwen2_vl"
    from unimumer.commands.error_corpus import sample_parser

    child = sample_parser().parse_args(["--heldout", "h", "--model", "m", "--output", "o", "--samples", "2",
                                        *generation.to_argv()])
    assert GenerationSettings.from_args(child) == generation


# a decoding option added to GenerationSettings alone (in a child interpreter, before anything imports it)
_NEW_OPTION = textwrap.dedent("""
    import contextlib, dataclasses, io, json, runpy, sys
    import unimumer.inference.settings as S

    S.GenerationSettings = dataclasses.make_dataclass(
        "GenerationSettings", [("repetition_penalty", float, S.option(
            1.0, help="penalty of repeated tokens (default: {default})"))], bases=(S.GenerationSettings,))

    def help_of(script):
        out = io.StringIO()
        sys.argv = [script, "--help"] + (["x.png"] if "predict" in script else [])
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            runpy.run_path(script, run_name="__main__")
        return out.getvalue()

    from unimumer.commands.error_corpus import sample_parser
    from unimumer.commands.infer import build_parser, check_args
    from unimumer.inference.runner import run_settings, settings_fingerprint, settings_from_config, worker_config

    fingerprints, rebuilt = {}, None
    for value in ("1.0", "1.3"):
        a = build_parser().parse_args(["--model", "Org/Model", "--repetition-penalty", value])
        check_args(a)
        a.resolved_image_root = None
        settings = run_settings(a)
        fingerprints[value] = [settings.get("repetition_penalty"), settings_fingerprint(settings)]
        rebuilt = settings_from_config(json.loads(json.dumps(worker_config(a))))[0]
    child = sample_parser().parse_args(["--heldout", "h", "--model", "m", "--output", "o", "--samples", "2",
                                        *rebuilt.to_argv()])
    print(json.dumps({
        "infer_help": help_of("scripts/vllm_infer.py"), "predict_help": help_of("scripts/predict.py"),
        "fingerprints": fingerprints, "worker": rebuilt.repetition_penalty,
        "child": S.GenerationSettings.from_args(child).repetition_penalty,
    }))
""")


def test_a_decoding_option_added_to_the_dataclass_reaches_every_place():
    proc = subprocess.run([sys.executable, "-c", _NEW_OPTION], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.splitlines()[-1])
    for key in ("infer_help", "predict_help"):
        assert "--repetition-penalty REPETITION_PENALTY" in got[key]
        assert "penalty of repeated tokens (default: 1.0)" in " ".join(got[key].split())
    (v1, fp1), (v2, fp2) = got["fingerprints"]["1.0"], got["fingerprints"]["1.3"]
    assert (v1, v2) == (1.0, 1.3) and fp1 != fp2
    assert got["worker"] == 1.3 and got["child"] == 1.3
