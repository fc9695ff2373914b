"""strip_think_opener (the prompts of both --preprocessing modes are tested in test_infer_preprocessing.py)."""


from unimumer.inference.engines import strip_think_opener


def test_strip_think_opener():
    base = "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"
    assert strip_think_opener(base + "<think>\n") == base
    assert strip_think_opener(base + "<think>\n\n</think>\n\n") == base
    assert strip_think_opener(base) == base
    assert strip_think_opener("<think>\n") == "<think>\n"  # only right after the generation prompt
