"""The two inference engines behind one call: ``engine.generate(images, prompts) -> list[str]``.

Both engines build the same model input for a given ``GenerationSettings.preprocessing``:

``official`` (default; the released evaluation, BFlameSwift/Uni-MuMER ``scripts/vllm_infer.py``, whose numbers
users compare with):

- the chat is ``[system "You are a helpful assistant.", user [image, prompt text]]`` rendered by the checkpoint's
  own processor chat template (``apply_chat_template(..., add_generation_prompt=True)``, unchanged: a Qwen3.5
  template's ``<think>`` opener stays, as in the official script);
- the image goes through ``qwen_vl_utils.process_vision_info`` with its defaults (``smart_resize`` on factor 28,
  3,136 … 12,845,056 pixels) and then through the checkpoint's image processor with the checkpoint's
  ``preprocessor_config.json`` defaults (no ``mm_processor_kwargs``).

``training`` (what LLaMA-Factory fed the model in fine-tuning): the prompt is LLaMA-Factory's own template
(``qwen2_vl`` / ``qwen3_vl_nothink`` / ``qwen3_5_nothink`` by default, from the checkpoint's ``model_type``) for
the ShareGPT human turn ``"<image>" + prompt``, with the template's default system message (``qwen2_vl``: "You are
a helpful assistant."; the ``*_nothink`` templates: none) and no thinking block; the image is resized by the
template's ``mm_plugin`` into [``image_min_pixels``, ``image_max_pixels``] (``GenerationSettings.min_pixels`` /
``max_pixels``, default 1,024 / 262,144 as in every config of ``train/``) and then handed to the checkpoint's image
processor with its defaults (which applies the checkpoint's ``size`` bounds again, exactly as in training).
Needs LLaMA-Factory installed (``requirements_training.txt``).

In both modes the image is first read with :func:`unimumer.images.load_image` (black strokes on white, the
training polarity); generation stops at ``<|im_end|>`` / ``<|endoftext|>``; temperature 0 means greedy decoding;
the generated ids are decoded by the same tokenizer call for both engines (greedy outputs are byte-identical).

``vllm``: one ``vllm.LLM`` (prefix caching on; one image per prompt; continuous batching inside each ``generate``
call). ``hf``: ``AutoModelForImageTextToText.generate`` on left-padded batches, for machines without vLLM.
:meth:`generate_outputs` also says which generations were cut by ``max_tokens`` (``truncated``).
``openai`` (:class:`OpenAIEngine`): the official-mode request sent to any OpenAI-compatible chat-completions
endpoint (the server applies its model's chat template and processor); a request that fails after its retries is
a :class:`Generation` with ``error``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..families import is_hybrid
from .adapters import check_adapter, vllm_max_lora_rank
from .inputs import chat_messages, input_mode, official_image, official_text
from .jobs import SYSTEM_MESSAGE
from .settings import DTYPES, PREPROCESSING, GenerationSettings

__all__ = ["DTYPES", "PREPROCESSING", "GenerationSettings", "chat_messages", "official_text"]

STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")
#: ``hf`` backend's default records per ``generate`` call (see docs/inference.md for the memory arithmetic).
HF_DEFAULT_BATCH = 16


@dataclass(frozen=True)
class Generation:
    """One engine output: the decoded ``text``, whether generation stopped at ``max_tokens`` (``truncated``) and,
    for a request that failed on its own (``openai`` backend, after its retries), the ``error`` text (``text`` is
    then ``""`` and the runner writes an error record)."""

    text: str
    truncated: bool = False
    error: str | None = None


def check_model_location(model: str) -> None:
    """Refuse a ``--model`` that names a local folder which is missing or is not a checkpoint.

    A Hugging Face Hub id (``org/name``, no leading ``/``, ``.`` or ``~``) is left to ``from_pretrained``; anything
    else that looks like a path (absolute, ``./``, ``../``, ``~``, two or more ``/``, or an existing path) must be a
    folder holding ``config.json``. Raises :class:`InputError` naming the folder and ``--model``.
    """
    path = Path(model).expanduser()
    looks_like_path = (path.exists() or model.startswith(("/", ".", "~")) or model.count("/") >= 2
                       or "\\" in model)
    if not looks_like_path:
        return
    if not path.is_dir():
        raise InputError(f"--model {model}: no such model folder (pass a folder holding config.json, or a "
                         "Hugging Face id such as Qwen/Qwen2.5-VL-3B-Instruct)")
    if not (path / "config.json").is_file():
        raise InputError(f"--model {model}: the folder has no config.json (not a saved checkpoint; pass the "
                         "folder LLaMA-Factory's output_dir or export_dir wrote)")


def check_dtype(dtype: str) -> None:
    """Refuse a ``--dtype`` outside :data:`DTYPES` (both engines). Raises :class:`InputError` naming ``--dtype``."""
    if dtype not in DTYPES:
        raise InputError(f"--dtype {dtype!r}: not a supported dtype (choose {', '.join(DTYPES)})")


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f}"


def check_vllm_can_start(dtype: str, gpu_memory_utilization: float) -> None:
    """Checks made before a ``vllm.LLM`` is built, for the start-up failures vLLM reports only from its
    engine-core process (the caller then sees ``RuntimeError: Engine core initialization failed`` and the cause
    is buried in the worker's log).

    - ``--dtype``: must be one of the platform's supported dtypes (``current_platform.supported_dtypes``);
    - CPU only, the KV cache vLLM-CPU will reserve at start-up (vLLM 0.32 ``CPUWorker``): with
      ``VLLM_CPU_KVCACHE_SPACE`` set, that many GiB (an integer, vLLM parses it with ``int``); without it,
      ``--gpu-memory-utilization`` x the memory node's total memory. Either must fit in the node's available
      memory (vLLM's own ``get_memory_node_info``).

    Raises :class:`InputError` naming the cause and the option / variable that fixes it.
    """
    import os

    import torch
    from vllm.platforms import current_platform

    check_dtype(dtype)
    if dtype != "auto" and getattr(torch, dtype) not in current_platform.supported_dtypes:
        names = ", ".join(str(d).removeprefix("torch.") for d in current_platform.supported_dtypes)
        raise InputError(f"--dtype {dtype}: not supported by vLLM on this machine (supported: {names}); "
                         "pass --dtype float32 or auto")
    if not current_platform.is_cpu():
        return
    if not 0 < gpu_memory_utilization <= 1:
        raise InputError(f"--gpu-memory-utilization {gpu_memory_utilization}: must be in (0, 1]")
    from vllm.utils.cpu_resource_utils import get_allowed_cpu_list, get_memory_node_info

    cpus = get_allowed_cpu_list()
    node = get_memory_node_info(cpus[0].numa_node if cpus else 0)
    space = os.environ.get("VLLM_CPU_KVCACHE_SPACE", "")
    if space != "":
        try:
            gib = int(space)
        except ValueError:
            raise InputError(f"VLLM_CPU_KVCACHE_SPACE={space!r}: must be a whole number of GiB (e.g. "
                             "export VLLM_CPU_KVCACHE_SPACE=1)") from None
        if gib < 1:
            raise InputError(f"VLLM_CPU_KVCACHE_SPACE={space}: the vLLM KV cache needs at least 1 GiB (e.g. "
                             "export VLLM_CPU_KVCACHE_SPACE=1)")
        if gib * 2**30 > node.available_memory:
            raise InputError(f"VLLM_CPU_KVCACHE_SPACE={space}: {space} GiB of vLLM KV cache requested, "
                             f"{_gib(node.available_memory)} of {_gib(node.total_memory)} GiB available; export "
                             "a smaller VLLM_CPU_KVCACHE_SPACE (e.g. 1)")
        return
    want = gpu_memory_utilization * node.total_memory
    if want > node.available_memory:
        raise InputError(f"VLLM_CPU_KVCACHE_SPACE is not set, so vLLM-CPU reserves --gpu-memory-utilization "
                         f"{gpu_memory_utilization} x {_gib(node.total_memory)} GiB = {_gib(want)} GiB but "
                         f"{_gib(node.available_memory)} GiB are available; export VLLM_CPU_KVCACHE_SPACE=1 "
                         "(GiB of KV cache) or lower --gpu-memory-utilization")


class _Base:
    """Shared pieces: the start checks, the processor, the prompt text, image pre-processing and decoding of both
    modes. ``dtype`` and the ``lora`` adapter are checked before anything is loaded (``self.lora_info``: the
    adapter's :func:`~unimumer.inference.adapters.check_adapter` result, or ``None``)."""

    def __init__(self, model: str, settings: GenerationSettings, *, dtype: str = "auto", lora: str | None = None):
        from transformers import AutoConfig, AutoProcessor

        check_dtype(dtype)
        self.lora_info = check_adapter(lora, model) if lora else None
        self.model_name = model
        self.settings = settings
        self.input_mode = input_mode(settings.preprocessing)
        if settings.min_pixels < 1 or settings.max_pixels < settings.min_pixels:
            raise InputError(
                f"invalid pixel bounds --min-pixels {settings.min_pixels} --max-pixels {settings.max_pixels}"
            )
        check_model_location(model)
        try:
            self.processor = AutoProcessor.from_pretrained(model)
            self.model_type = getattr(AutoConfig.from_pretrained(model), "model_type", None)
        except (OSError, ValueError) as exc:
            raise InputError(f"{model}: cannot load the model's processor ({str(exc).splitlines()[0]})") from None
        if not hasattr(self.processor, "image_processor"):
            raise InputError(f"{model}: not a vision-language model (its processor has no image processor)")
        self.tokenizer = self.processor.tokenizer
        ip = self.processor.image_processor
        self.patch_size = int(getattr(ip, "patch_size", 14))
        self.merge_size = int(getattr(ip, "merge_size", 2))
        size = getattr(ip, "size", None) or {}
        self.processor_max_pixels = int(size.get("longest_edge") or getattr(ip, "max_pixels", 0) or 12845056)
        self.stop_token_ids = [
            t for t in (self.tokenizer.convert_tokens_to_ids(s) for s in STOP_TOKENS)
            if t is not None and t != self.tokenizer.unk_token_id
        ]
        self._template = None
        self._prompt_cache: dict[str, str] = {}
        self.input_mode.setup(self)

    def prompt_text(self, image, prompt: str) -> str:
        """The prompt text of one request (one vision placeholder, expanded by the processor / vLLM), built by the
        input mode (:mod:`unimumer.inference.inputs`)."""
        return self.input_mode.prompt_text(self, image, prompt)

    def prepare_image(self, image, prompt: str = ""):
        """The image the engine hands to the checkpoint's processor, from a loaded RGB ``PIL.Image``, prepared by
        the input mode. Raises :class:`InputError` for an image the mode refuses (official: aspect ratio > 200)."""
        return self.input_mode.prepare_image(self, image, prompt)

    def model_inputs(self, images: Sequence, prompts: Sequence[str]):
        """What the checkpoint's processor makes of prepared images + prompts (``input_ids``, ``pixel_values``,
        ``image_grid_thw``, …; left-padded batch, torch tensors): exactly the hf engine's model input, and the
        input vLLM builds with the same processor."""
        texts = [self.prompt_text(img, p) for img, p in zip(images, prompts, strict=True)]
        return self.processor(text=texts, images=list(images), padding=True, padding_side="left", return_tensors="pt")

    def max_visual_tokens(self) -> int:
        """Upper bound of one image's visual tokens under this engine's pre-processing (for the context length)."""
        unit = self.patch_size * self.merge_size
        return max(self.processor_max_pixels, self.settings.max_pixels) // (unit * unit) + 1

    def decode(self, token_ids: Sequence[Sequence[int]]) -> list[str]:
        """Decode generated ids (both engines use this, so their texts agree byte for byte)."""
        return self.tokenizer.batch_decode([list(t) for t in token_ids], skip_special_tokens=True)

    def generate(self, images: Sequence, prompts: Sequence[str]) -> list[str]:
        """One output text per (image from :meth:`prepare_image`, prompt text); order kept."""
        return [g.text for g in self.generate_outputs(images, prompts)]

    def generate_outputs(self, images: Sequence, prompts: Sequence[str]) -> list[Generation]:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        """Release the engine (frees the accelerator memory)."""


def seeded_sampling_scheduler_kwargs(max_model_len: int, model_type: str | None = None) -> dict:
    """vLLM scheduler options that make per-request seeded sampling work on this platform (``{}`` on GPUs).

    On CPU: ``enable_chunked_prefill=False`` with ``max_num_batched_tokens >= max(max_model_len, 4096)``, so no
    prompt is prefilled in two steps (vLLM would rewind the request's CPU generator, which has no offset, and the
    engine dies); for a hybrid linear-attention family (:func:`unimumer.families.is_hybrid`) also
    ``enable_prefix_caching=False``, which vLLM requires with chunked prefill off. Why: docs/edl.md, "Seeded sampling".
    """
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return {}
    kwargs = {"enable_chunked_prefill": False, "max_num_batched_tokens": max(int(max_model_len), 4096)}
    if is_hybrid(model_type):
        kwargs["enable_prefix_caching"] = False
    return kwargs


class VLLMEngine(_Base):
    """vLLM engine (``vllm.LLM``); on CPU it needs the ``vllm-cpu`` package and an ``if __name__ == "__main__"``
    guard in the calling script (vLLM spawns its engine-core process). :meth:`close` shuts the engine processes
    down; should this process die without it (``kill -9``), the watchdog of
    :func:`unimumer.inference.lifecycle.guard_descendants` (started here) stops them.

    ``lora``: a LoRA adapter folder served unmerged (``enable_lora=True``, ``max_lora_rank`` from the adapter, a
    ``LoRARequest`` on every ``generate``); checked against ``model`` first (:mod:`unimumer.inference.adapters`).
    Raises :class:`InputError` when vLLM is not installed, the adapter does not fit or the model cannot be loaded.
    """

    def __init__(
        self,
        model: str,
        settings: GenerationSettings,
        *,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        enforce_eager: bool = False,
        lora: str | None = None,
    ):
        super().__init__(model, settings, dtype=dtype, lora=lora)
        lora_info = self.lora_info
        self.lora_request = None
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise InputError(f"vLLM is not installed ({exc}); install vllm or use --backend hf") from None
        check_vllm_can_start(dtype, gpu_memory_utilization)
        if max_model_len is None:
            # image tokens at the processor's pixel bound + prompt text + the generation budget
            max_model_len = settings.max_tokens + self.max_visual_tokens() + 1024
        kwargs = dict(
            model=model,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            seed=settings.seed if settings.seed is not None else 0,
            max_model_len=max_model_len,
            limit_mm_per_prompt={"image": 1},
            gpu_memory_utilization=gpu_memory_utilization,
            enforce_eager=enforce_eager,
        )
        kwargs["enable_prefix_caching"] = True  # the N samples of one request share their prompt's prefill
        kwargs.update(seeded_sampling_scheduler_kwargs(max_model_len, self.model_type))  # CPU: may turn it off
        if lora_info is not None:  # unmerged LoRA: vLLM applies the adapter per request (LoRARequest)
            kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=vllm_max_lora_rank(lora_info.rank))
        from .lifecycle import guard_descendants

        guard_descendants()  # the engine's processes end with this one, also after kill -9
        try:
            self.llm = LLM(**kwargs)
        except (ValueError, OSError) as exc:  # unsupported architecture, too long context, no memory for the cache
            # a pydantic ValidationError says "1 validation error for VllmConfig" first and the reason next
            reason = "; ".join(ln.strip() for ln in str(exc).splitlines()[:2] if ln.strip())[:300]
            raise InputError(f"{model}: vLLM cannot serve this model ({reason}); check "
                             "--dtype, --max-model-len, --gpu-memory-utilization") from None
        except RuntimeError as exc:  # the engine-core process died while starting; its log is above
            raise InputError(f"{model}: the vLLM engine failed to start ({str(exc).splitlines()[0][:200]}; the "
                             "cause is in vLLM's log above); check --dtype, --max-model-len, "
                             "--gpu-memory-utilization (GPU) or VLLM_CPU_KVCACHE_SPACE (CPU)") from None
        s = settings
        self.sampling = SamplingParams(
            n=1,
            temperature=s.temperature,
            top_p=s.top_p if s.temperature > 0 else 1.0,
            top_k=s.top_k if s.temperature > 0 else -1,
            max_tokens=s.max_tokens,
            seed=s.seed,
            stop_token_ids=self.stop_token_ids,
            detokenize=False,
        )
        if lora_info is not None:
            from vllm.lora.request import LoRARequest

            self.lora_request = LoRARequest("adapter", 1, lora_info.path)

    def generate_outputs(self, images: Sequence, prompts: Sequence[str]) -> list[Generation]:
        """One :class:`Generation` per (image from :meth:`prepare_image`, prompt text); order kept.

        The image reaches vLLM's copy of the checkpoint's processor with the checkpoint's defaults (no
        ``mm_processor_kwargs``), as in the official script. Raises the engine's errors."""
        requests = [
            {"prompt": self.prompt_text(img, p), "multi_modal_data": {"image": [img]}}
            for img, p in zip(images, prompts, strict=True)
        ]
        outputs = self.llm.generate(requests, self.sampling, use_tqdm=False, lora_request=self.lora_request)
        texts = self.decode([o.outputs[0].token_ids for o in outputs])
        return [Generation(t, o.outputs[0].finish_reason == "length") for t, o in zip(texts, outputs, strict=True)]

    def sample_outputs(self, images: Sequence, prompts: Sequence[str], n: int) -> list[list[str]]:
        """``n`` sampled texts per (image from :meth:`prepare_image`, prompt text), in order: one vLLM request per
        image with this engine's sampling parameters and ``n = n`` (vLLM seeds child ``j`` with ``seed + j``), the
        adapter's LoRA request applied. Raises the engine's errors."""
        params = self.sampling.clone()
        params.n = n
        requests = [{"prompt": self.prompt_text(img, p), "multi_modal_data": {"image": [img]}}
                    for img, p in zip(images, prompts, strict=True)]
        outputs = self.llm.generate(requests, params, use_tqdm=False, lora_request=self.lora_request)
        return [self.decode([c.token_ids for c in o.outputs]) for o in outputs]

    def close(self) -> None:
        """Shut the engine-core process down."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
            if callable(shutdown):
                shutdown()
            self.llm = None


class HFEngine(_Base):
    """transformers engine: ``AutoModelForImageTextToText`` + batched ``generate`` with left padding.

    ``dtype``: ``auto`` (the checkpoint's), ``bfloat16``, ``float16`` or ``float32``; ``device``: ``auto`` (CUDA if
    available, else CPU) or a torch device string; ``lora``: a LoRA adapter folder wrapped around the model with
    ``peft.PeftModel`` (checked first). Raises :class:`InputError` when the adapter does not fit or the model cannot
    be loaded.
    """

    def __init__(self, model: str, settings: GenerationSettings, *, dtype: str = "auto", device: str = "auto",
                 lora: str | None = None):
        super().__init__(model, settings, dtype=dtype, lora=lora)
        lora_info = self.lora_info
        import torch
        from transformers import AutoModelForImageTextToText

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        try:
            self.model = AutoModelForImageTextToText.from_pretrained(model, dtype=torch_dtype)
        except (OSError, ValueError) as exc:
            raise InputError(f"{model}: cannot load the model ({str(exc).splitlines()[0]})") from None
        if lora_info is not None:  # unmerged LoRA through peft (the adapter's own modules wrap the base layers)
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, lora_info.path)
        self.model.to(device).eval()
        self.device = device
        self.tokenizer.padding_side = "left"
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.stop_token_ids[-1] if self.stop_token_ids else 0

    def generate_outputs(self, images: Sequence, prompts: Sequence[str]) -> list[Generation]:
        """One :class:`Generation` per (image from :meth:`prepare_image`, prompt text), one left-padded batch
        through the checkpoint's processor with its defaults (:meth:`model_inputs`); order kept."""
        import torch

        s = self.settings
        inputs = self.model_inputs(images, prompts).to(self.device)
        gen = dict(max_new_tokens=s.max_tokens, eos_token_id=self.stop_token_ids, pad_token_id=self.pad_id)
        if s.temperature > 0:
            gen.update(do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k)
            if s.seed is not None:
                torch.manual_seed(s.seed)
        else:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **gen)
        new = out[:, inputs["input_ids"].shape[1]:].tolist()
        # cut each row at its first stop token (the rest is padding); no stop token = cut by max_new_tokens
        stops = set(self.stop_token_ids)
        cut, truncated = [], []
        for row in new:
            end = next((j + 1 for j, t in enumerate(row) if t in stops), None)
            truncated.append(end is None and len(row) >= s.max_tokens)
            cut.append(row[:end] if end is not None else row)
        return [Generation(t, tr) for t, tr in zip(self.decode(cut), truncated, strict=True)]


#: ``--api-key-env`` unset: vLLM's ``serve`` accepts any key when started without ``--api-key``.
NO_API_KEY = "EMPTY"


def api_key_from_env(name: str | None) -> str:
    """The API key held by the environment variable ``name`` (``None`` → :data:`NO_API_KEY`, for a server without
    authentication). The key is only ever read from the environment, never from a flag, and never stored.

    Raises :class:`InputError` naming the variable (never its value) when it is unset or empty.
    """
    if name is None:
        return NO_API_KEY
    import os

    key = os.environ.get(name, "")
    if not key.strip():
        raise InputError(f"--api-key-env {name}: the environment variable {name} is not set or empty "
                         f"(export {name}=<your key>, or leave --api-key-env out for a server without a key)")
    return key.strip()


class OpenAIEngine:
    """Any model behind an OpenAI-compatible chat-completions endpoint (vLLM ``serve``, SGLang, OpenAI, ...),
    with the interface of the local engines (``prepare_image`` / ``generate_outputs`` / ``close``).

    Request of one record (the official evaluation's, :func:`chat_messages`): ``[system "You are a helpful
    assistant.", user [image_url, text]]`` where the text is :func:`official_text` (``"<image>"`` + prompt, as the
    official script passes it) and the image is the ``qwen_vl_utils.process_vision_info`` output of the
    black-on-white image (as the local engines prepare it), sent losslessly as a base64 PNG data URL. The server
    applies its model's chat template and processor. Sampling: ``temperature``, ``max_tokens``, ``seed``;
    ``top_p`` and (vLLM / SGLang extension, sent in the body only when ``top_k > 0``) ``top_k`` when sampling;
    greedy (``temperature == 0``) sends ``top_p = 1`` and no ``top_k``, like the local engines.

    ``base_url``: the endpoint up to ``/v1``; ``api_model``: the served model name; ``api_key``: from
    :func:`api_key_from_env`; ``max_concurrency``: requests in flight at once; ``timeout``: seconds per request;
    ``max_retries``: retries of a request on connection errors, timeouts, 408 / 409 / 429 and 5xx, with the
    ``openai`` client's exponential backoff (0.5 s doubling to 8 s, with jitter; a ``Retry-After`` up to 60 s is
    obeyed). A request that still fails comes back as a :class:`Generation` with ``error`` set; the others go on.
    Only the ``official`` pre-processing exists here (the server owns the chat template).
    Raises :class:`InputError` for unusable options.
    """

    def __init__(self, settings: GenerationSettings, *, base_url: str, api_model: str, api_key: str,
                 max_concurrency: int = 8, timeout: float = 600.0, max_retries: int = 5):
        if settings.preprocessing != "official":
            raise InputError("--backend openai: only --preprocessing official (the server applies its own chat "
                             "template)")
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise InputError(f"--base-url {base_url!r}: must be an http:// or https:// URL (e.g. "
                             "http://127.0.0.1:8000/v1)")
        if not api_model:
            raise InputError("--backend openai needs --api-model (the served model name)")
        if max_concurrency < 1 or timeout <= 0 or max_retries < 0:
            raise InputError("--max-concurrency must be >= 1, --request-timeout > 0, --max-retries >= 0")
        try:
            import openai
        except ImportError as exc:
            raise InputError(f"the openai client is not installed ({exc}); pip install 'openai>=1.0,<4'") from None
        self.settings = settings
        self.model_name = api_model
        self.api_model = api_model
        self.max_concurrency = max_concurrency
        self._openai = openai
        self.client = openai.OpenAI(base_url=base_url.rstrip("/"), api_key=api_key, timeout=timeout,
                                    max_retries=max_retries)

    def prepare_image(self, image, prompt: str = ""):
        """The image of the official path (``qwen_vl_utils.process_vision_info`` over the official chat), as the
        local engines prepare it. Raises :class:`InputError` for an image the path refuses."""
        return official_image(image, prompt)

    @staticmethod
    def image_url(image) -> str:
        """``data:image/png;base64,...`` of a PIL image (PNG: lossless, the server sees the same pixels)."""
        import base64
        import io

        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")

    def messages(self, image, prompt: str) -> list[dict]:
        """The chat-completions messages of one record (see the class docstring)."""
        return [
            {"role": "system", "content": SYSTEM_MESSAGE},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": self.image_url(image)}},
                                         {"type": "text", "text": official_text(prompt)}]},
        ]

    def request_options(self) -> dict:
        """Sampling options of every request (the local engines' ``SamplingParams``)."""
        s = self.settings
        opts: dict = {"model": self.api_model, "max_tokens": s.max_tokens, "temperature": s.temperature, "n": 1}
        if s.seed is not None:
            opts["seed"] = s.seed
        if s.temperature > 0:
            opts["top_p"] = s.top_p
            if s.top_k > 0:
                opts["extra_body"] = {"top_k": s.top_k}
        else:
            opts["top_p"] = 1.0
        return opts

    def _one(self, image, prompt: str) -> Generation:
        try:
            resp = self.client.chat.completions.create(messages=self.messages(image, prompt),
                                                       **self.request_options())
        except self._openai.APIStatusError as exc:
            return Generation("", error=f"API error: HTTP {exc.status_code}: {_first_line(exc.message)}"[:300])
        except self._openai.APIError as exc:  # connection error, timeout, unparsable answer
            return Generation("", error=f"API error: {type(exc).__name__}: {_first_line(str(exc))}"[:300])
        if not resp.choices:
            return Generation("", error="API error: answer without choices")
        choice = resp.choices[0]
        return Generation(choice.message.content or "", choice.finish_reason == "length")

    def generate_outputs(self, images: Sequence, prompts: Sequence[str]) -> list[Generation]:
        """One :class:`Generation` per (image from :meth:`prepare_image`, prompt text), at most
        ``max_concurrency`` requests in flight; order kept. A failed request is a :class:`Generation` with
        ``error``; nothing is raised for it."""
        from concurrent.futures import ThreadPoolExecutor

        pairs = list(zip(images, prompts, strict=True))
        if not pairs:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(pairs))) as pool:
            return list(pool.map(lambda ip: self._one(*ip), pairs))

    def generate(self, images: Sequence, prompts: Sequence[str]) -> list[str]:
        """One output text per (image, prompt); raises :class:`InputError` with the first failed request's error."""
        gens = self.generate_outputs(images, prompts)
        bad = next((g.error for g in gens if g.error), None)
        if bad:
            raise InputError(bad)
        return [g.text for g in gens]

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def make_engine(backend: str, model: str, settings: GenerationSettings, **kwargs):
    """Build the ``vllm``, ``hf`` or ``openai`` engine. ``kwargs``: ``tensor_parallel_size``, ``dtype``,
    ``max_model_len``, ``gpu_memory_utilization``, ``enforce_eager`` (vLLM) / ``dtype``, ``device`` (hf) /
    ``base_url``, ``api_model``, ``api_key_env``, ``max_concurrency``, ``timeout``, ``max_retries`` (openai; ``model``
    unused); options that do not apply are ignored.
    ``lora``: a LoRA adapter folder applied unmerged on top of ``model`` (both engines; checked first with
    :func:`unimumer.inference.adapters.check_adapter`, so a missing / mismatched adapter fails before the engine starts).

    Raises :class:`InputError` for an unknown backend or a model that cannot be loaded.
    """
    if backend == "vllm":
        keep = ("tensor_parallel_size", "dtype", "max_model_len", "gpu_memory_utilization", "enforce_eager", "lora")
        return VLLMEngine(model, settings, **{k: v for k, v in kwargs.items() if k in keep})
    if backend == "hf":
        keep = ("dtype", "device", "lora")
        return HFEngine(model, settings, **{k: v for k, v in kwargs.items() if k in keep})
    if backend == "openai":
        keep = ("base_url", "api_model", "max_concurrency", "timeout", "max_retries")
        return OpenAIEngine(settings, api_key=api_key_from_env(kwargs.get("api_key_env")),
                            **{k: v for k, v in kwargs.items() if k in keep})
    raise InputError(f"unknown backend {backend!r} (choose vllm, hf or openai)")


def default_backend() -> str:
    """``vllm`` when a CUDA GPU and vLLM are present, else ``hf`` (``scripts/predict.py --backend auto``)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return "hf"
    import torch

    return "vllm" if torch.cuda.is_available() else "hf"
