"""Inference prompts equal the prompts the models were fine-tuned on (LLaMA-Factory templates of train/*.yaml)."""

import pytest

from unimumer.images import load_image
from unimumer.inference.engines import GenerationSettings, _Base, strip_think_opener
from unimumer.tasks import TASKS

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "qwen3_5"])
def test_prompt_ends_where_the_training_answer_starts(family, tiny_model_dir, crohme_samples):
    engine = _Base(str(tiny_model_dir(family)), GenerationSettings())
    image = engine.prepare_image(load_image(crohme_samples[0].path))
    text = engine.prompt_text(image, TASKS["vanilla"].prompt())
    # the released evaluation's system message, then the user turn: image placeholder, prompt text
    assert text.startswith(SYSTEM + "<|im_start|>user\n<|vision_start|>")
    # LLaMA-Factory's qwen2_vl / qwen3_vl_nothink / qwen3_5_nothink put the answer right after this line:
    # no thinking block (Qwen3.5's own template would open "<think>\n" here)
    assert text.endswith(TASKS["vanilla"].prompt() + "<|im_end|>\n<|im_start|>assistant\n")
    assert "<think>" not in text


def test_strip_think_opener():
    base = "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"
    assert strip_think_opener(base + "<think>\n") == base
    assert strip_think_opener(base + "<think>\n\n</think>\n\n") == base
    assert strip_think_opener(base) == base
    assert strip_think_opener("<think>\n") == "<think>\n"  # only right after the generation prompt
