"""``--preprocessing official|training``: the engines feed each family what the official evaluation fed it, or
exactly what LLaMA-Factory fed it in fine-tuning.

Parity on real images (CROHME 2014 test, MNE N1; converted to black on white like every training / released
image) for the three tiny families, which carry the released checkpoints' processor configuration:

- training: prompt token ids, ``image_grid_thw`` and ``pixel_values`` of the engines' model input equal those of
  LLaMA-Factory's own pipeline (``load_tokenizer`` with the configs' ``image_max_pixels``, the family's template,
  ``mm_plugin.process_messages`` / ``encode_oneturn`` / ``process_token_ids`` / ``get_mm_inputs``) for the same
  ShareGPT record;
- official: they equal the official ``scripts/vllm_infer.py`` path (checkpoint chat template over the system +
  user messages with the image path, ``qwen_vl_utils.process_vision_info``, the checkpoint's processor defaults).

No engine is started: the compared input is :meth:`_Base.model_inputs`, the hf engine's input and the processor
call vLLM makes with the same text and image.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from unimumer.files import sharegpt_record
from unimumer.images import load_image, save_image
from unimumer.inference.engines import GenerationSettings, _Base
from unimumer.paths import REPO_ROOT
from unimumer.tasks import TASKS
from unimumer.testing.tiny_models import FAMILIES

FIXTURE_IMAGES = REPO_ROOT / "tests" / "fixtures" / "images"
#: small and large real images: CROHME 2014 test (501_em_23 is 84 x 68 px, 18_em_0 is wide), MNE N1
IMAGES = [("crohme2014", "501_em_23"), ("crohme2014", "18_em_0"), ("crohme2014", "511_em_259"),
          ("mne_n1", "N1_0"), ("mne_n1", "N1_2")]
PROMPTS = [TASKS["vanilla"].prompt(), TASKS["tree"].prompt()]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[tuple[Path, str]]:
    """(black-on-white PNG, caption) of each real image in :data:`IMAGES`."""
    out_dir = tmp_path_factory.mktemp("parity_images")
    out = []
    for sub, img_id in IMAGES:
        captions = dict(
            line.split(maxsplit=1) if "\t" not in line else line.split("\t", 1)
            for line in (FIXTURE_IMAGES / sub / "caption.txt").read_text(encoding="utf-8").splitlines() if line.strip()
        )
        dst = out_dir / f"{img_id}.png"
        save_image(load_image(FIXTURE_IMAGES / sub / "img" / f"{img_id}.png"), dst)
        out.append((dst, captions[img_id].strip()))
    return out


def _llamafactory_inputs(model: Path, template_name: str, record: dict):
    """LLaMA-Factory 0.9.5's own data pipeline for one ShareGPT record (the configs' image_max_pixels)."""
    from llamafactory.data.template import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments, ModelArguments
    from llamafactory.model import load_tokenizer

    mods = load_tokenizer(ModelArguments(model_name_or_path=str(model), image_max_pixels=262144,
                                         image_min_pixels=1024))
    tok, proc = mods["tokenizer"], mods["processor"]
    template = get_template_and_fix_tokenizer(tok, DataArguments(template=template_name))
    messages = [{"role": "user" if m["from"] == "human" else "assistant", "content": m["value"]}
                for m in record["messages"]]
    messages = template.mm_plugin.process_messages(messages, record["images"], [], [], proc)
    prompt_ids, answer_ids = template.encode_oneturn(tok, messages, None, None)
    prompt_ids, _ = template.mm_plugin.process_token_ids(prompt_ids, answer_ids, record["images"], [], [], tok, proc)
    mm = template.mm_plugin.get_mm_inputs(record["images"], [], [], [1], [0], [0], [prompt_ids], proc)
    return prompt_ids, mm


def _official_inputs(model: Path, image_path: str, prompt: str):
    """The official scripts/vllm_infer.py request, through the checkpoint's processor with its defaults."""
    from qwen_vl_utils import process_vision_info
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model)
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": [{"type": "image", "image": image_path}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    image_inputs, _ = process_vision_info(messages)
    return processor(text=[text], images=image_inputs, return_tensors="pt")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_training_mode_equals_llamafactory_pipeline(family, tiny_model_dir, images):
    import torch

    model = tiny_model_dir(family)
    engine = _Base(str(model), GenerationSettings(preprocessing="training"))
    for (path, caption), prompt in zip(images, (PROMPTS * 3)[:len(images)], strict=True):
        record = sharegpt_record(str(path), prompt, caption)
        lf_ids, lf_mm = _llamafactory_inputs(model, FAMILIES[family].llamafactory_template, record)
        img = engine.prepare_image(load_image(path), prompt)
        ours = engine.model_inputs([img], [prompt])
        assert ours["input_ids"][0].tolist() == lf_ids, (family, path.name)
        assert ours["image_grid_thw"].tolist() == lf_mm["image_grid_thw"].tolist()
        assert torch.equal(ours["pixel_values"], lf_mm["pixel_values"])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_official_mode_equals_the_official_script(family, tiny_model_dir, images):
    import torch

    model = tiny_model_dir(family)
    engine = _Base(str(model), GenerationSettings())  # official is the default
    for (path, caption), prompt in zip(images, (PROMPTS * 3)[:len(images)], strict=True):
        record = sharegpt_record(str(path), prompt, caption)
        ref = _official_inputs(model, str(path), record["messages"][0]["value"].strip())  # as the script reads it
        img = engine.prepare_image(load_image(path), prompt)
        ours = engine.model_inputs([img], [prompt])
        assert ours["input_ids"].tolist() == ref["input_ids"].tolist(), (family, path.name)
        assert ours["image_grid_thw"].tolist() == ref["image_grid_thw"].tolist()
        assert torch.equal(ours["pixel_values"], ref["pixel_values"])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_two_modes_differ_where_training_and_the_official_script_differ(family, tiny_model_dir, images):
    """System turn only where the training template has a default one; Qwen3.5's official prompt keeps its
    ``<think>`` opener; Qwen3-VL / Qwen3.5 see a small image at their 65,536-pixel floor in both modes."""
    model = tiny_model_dir(family)
    official = _Base(str(model), GenerationSettings())
    training = _Base(str(model), GenerationSettings(preprocessing="training"))
    prompt = PROMPTS[0]
    small = load_image(images[0][0])
    o_text = official.prompt_text(official.prepare_image(small, prompt), prompt)
    t_text = training.prompt_text(training.prepare_image(small, prompt), prompt)
    system = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    assert o_text.startswith(system + "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|><image>" + prompt)
    assert t_text.startswith(system) == (family == "qwen2_5_vl")
    assert t_text.endswith(prompt + "<|im_end|>\n<|im_start|>assistant\n")
    assert o_text.endswith("<|im_start|>assistant\n" + ("<think>\n" if family == "qwen3_5" else ""))
    grid = training.model_inputs([training.prepare_image(small, prompt)], [prompt])["image_grid_thw"][0].tolist()
    floor = 65536 if family != "qwen2_5_vl" else 3136
    assert grid[1] * grid[2] * FAMILIES[family].patch_size ** 2 >= floor
