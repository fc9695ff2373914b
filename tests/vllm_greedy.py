"""Greedy vLLM generation on a tiny checkpoint, in its own process (vLLM spawns workers; used by test_tiny_models).

Usage: python tests/vllm_greedy.py MODEL_DIR IMAGE PROMPT_TEXT MAX_TOKENS DTYPE
Prints one JSON line: {"token_ids": [...], "text": "..."} for the chat-formatted prompt with the image.
"""

import json
import sys


def main(model_dir: str, image: str, prompt: str, max_tokens: int, dtype: str) -> None:
    from transformers import AutoProcessor
    from vllm import LLM, SamplingParams

    from unimumer.images import load_image

    processor = AutoProcessor.from_pretrained(model_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    llm = LLM(model=model_dir, dtype=dtype, max_model_len=4096, limit_mm_per_prompt={"image": 1}, seed=0)
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    out = llm.generate([{"prompt": text, "multi_modal_data": {"image": load_image(image)}}], params)[0].outputs[0]
    print("VLLM_RESULT " + json.dumps({"token_ids": list(out.token_ids), "text": out.text, "prompt": text}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
