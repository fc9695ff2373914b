"""Greedy vLLM generation on a tiny checkpoint, in its own process (vLLM spawns workers; used by test_tiny_models).

Usage: python tests/vllm_greedy.py MODEL_DIR IMAGE PROMPT_TEXT MAX_TOKENS DTYPE [IGNORE_EOS(0/1) [ENFORCE_EAGER(0/1)]]
Prints one line ``VLLM_RESULT {json}``: token_ids, text, the chat-formatted prompt (image first, as in the
prompt files), engine_start_s and generate_s (used by benchmarks/bench_tiny_models.py).
"""

import json
import sys
import time


def main(model_dir: str, image: str, prompt: str, max_tokens: int, dtype: str, ignore_eos: bool = False,
         enforce_eager: bool = False) -> None:
    from transformers import AutoProcessor
    from vllm import LLM, SamplingParams

    from unimumer.images import load_image

    processor = AutoProcessor.from_pretrained(model_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    t0 = time.perf_counter()
    llm = LLM(model=model_dir, dtype=dtype, max_model_len=4096, limit_mm_per_prompt={"image": 1}, seed=0,
              enforce_eager=enforce_eager)
    t1 = time.perf_counter()
    try:
        params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=ignore_eos)
        request = {"prompt": text, "multi_modal_data": {"image": load_image(image)}}
        out = llm.generate([request], params, use_tqdm=False)[0].outputs[0]
        t2 = time.perf_counter()
    finally:
        llm.llm_engine.engine_core.shutdown()  # the engine-core process ends here, not at interpreter exit
    result = {"token_ids": list(out.token_ids), "text": out.text, "prompt": text,
              "engine_start_s": t1 - t0, "generate_s": t2 - t1}
    print("VLLM_RESULT " + json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], len(sys.argv) > 6 and sys.argv[6] == "1",
         len(sys.argv) > 7 and sys.argv[7] == "1")
