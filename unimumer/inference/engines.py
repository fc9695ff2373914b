"""The two inference engines behind one call: ``engine.generate(images, prompts) -> list[str]``.

Both build exactly the same model input (released evaluation settings, ``../shared/spec/training.md``, last
paragraph):

- the chat is ``[system "You are a helpful assistant.", user [image, prompt text]]`` rendered with the model's own
  processor chat template (``apply_chat_template(..., add_generation_prompt=True)``);
- the image is read with :func:`unimumer.images.load_image` (black strokes on white, the training polarity) and
  resized by ``qwen_vl_utils.fetch_image`` to the pixel bounds (default: the training bounds, ``image_max_pixels:
  262144``) on the model's patch grid; the processor gets the same bounds so it does not resize again;
- generation stops at ``<|im_end|>`` / ``<|endoftext|>``; temperature 0 means greedy decoding;
- the generated token ids are decoded by the same tokenizer call (``skip_special_tokens=True``) for both engines,
  so greedy outputs are byte-identical between vLLM and transformers.

``vllm``: one ``vllm.LLM`` (prefix caching on: every request shares the system/instruction prefix; one image per
prompt; continuous batching inside each ``generate`` call). ``hf``: ``AutoModelForImageTextToText.generate`` on
left-padded batches, for machines without vLLM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .adapters import check_adapter, vllm_max_lora_rank
from .core import SYSTEM_MESSAGE, TRAIN_MAX_PIXELS, TRAIN_MIN_PIXELS

STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")


@dataclass
class GenerationSettings:
    """Sampling and pre-processing settings shared by both engines.

    ``temperature == 0`` → greedy. ``seed`` seeds sampling (vLLM: per request; transformers: ``torch``'s RNG
    before each batch). ``min_pixels`` / ``max_pixels`` bound the image area after resizing.
    """

    max_tokens: int = 2048
    temperature: float = 0.2
    top_p: float = 0.8
    top_k: int = 50
    seed: int | None = 0
    min_pixels: int = TRAIN_MIN_PIXELS
    max_pixels: int = TRAIN_MAX_PIXELS
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The settings that change outputs (stored in progress files to refuse mixing two runs)."""
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "seed": self.seed,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
        }


def chat_messages(image, prompt: str) -> list[dict]:
    """The released evaluation's chat: system message, then one user turn holding the image and the prompt text."""
    return [
        {"role": "system", "content": SYSTEM_MESSAGE},
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]},
    ]


_ASSISTANT = "<|im_start|>assistant\n"
_THINK_OPENERS = ("<think>\n\n</think>\n\n", "<think>\n")


def strip_think_opener(text: str) -> str:
    """Remove a thinking block opened right after the final ``<|im_start|>assistant\n`` of a prompt.

    Qwen3.5's chat template ends the generation prompt with ``<think>\n`` (or an empty ``<think>…</think>`` block
    when thinking is disabled); LLaMA-Factory's ``qwen3_5_nothink`` / ``qwen3_vl_nothink`` templates, which the
    configs in ``train/`` use, train on answers directly after ``<|im_start|>assistant\n``. Inference prompts are
    made equal to the training prompts. Other texts are returned unchanged.
    """
    for opener in _THINK_OPENERS:
        if text.endswith(_ASSISTANT + opener):
            return text[: -len(opener)]
    return text


DTYPES = ("auto", "bfloat16", "float16", "float32")


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
    """Shared pieces: the processor, the chat template, image resizing and decoding."""

    def __init__(self, model: str, settings: GenerationSettings):
        from transformers import AutoProcessor

        self.model_name = model
        self.settings = settings
        if settings.min_pixels < 1 or settings.max_pixels < settings.min_pixels:
            raise InputError(
                f"invalid pixel bounds --min-pixels {settings.min_pixels} --max-pixels {settings.max_pixels}"
            )
        check_model_location(model)
        try:
            self.processor = AutoProcessor.from_pretrained(model)
        except (OSError, ValueError) as exc:
            raise InputError(f"{model}: cannot load the model's processor ({str(exc).splitlines()[0]})") from None
        if not hasattr(self.processor, "image_processor"):
            raise InputError(f"{model}: not a vision-language model (its processor has no image processor)")
        self.tokenizer = self.processor.tokenizer
        self.patch_size = int(getattr(self.processor.image_processor, "patch_size", 14))
        self.stop_token_ids = [
            t for t in (self.tokenizer.convert_tokens_to_ids(s) for s in STOP_TOKENS)
            if t is not None and t != self.tokenizer.unk_token_id
        ]

    def prompt_text(self, image, prompt: str) -> str:
        """The chat-template text of one request (contains the vision placeholder tokens).

        A thinking block the template opens after the generation prompt (Qwen3.5) is removed: the models are
        fine-tuned with LLaMA-Factory's ``*_nothink`` templates, whose answers start right after
        ``<|im_start|>assistant\n`` (see :func:`strip_think_opener`).
        """
        return strip_think_opener(
            self.processor.apply_chat_template(chat_messages(image, prompt), tokenize=False, add_generation_prompt=True)
        )

    def prepare_image(self, image):
        """Resize a loaded RGB image with ``qwen_vl_utils.fetch_image`` to the pixel bounds on the patch grid.

        Input: the ``PIL.Image`` from :func:`unimumer.images.load_image`. Raises :class:`InputError` for an image
        ``qwen_vl_utils`` refuses (aspect ratio above 200).
        """
        import inspect

        from qwen_vl_utils import fetch_image

        # recent qwen-vl-utils take the patch size (14 or 16), older releases the resize factor (patch x merge 2)
        if "image_patch_size" in inspect.signature(fetch_image).parameters:
            grid = {"image_patch_size": self.patch_size}
        else:
            grid = {"size_factor": self.patch_size * 2}
        try:
            return fetch_image(
                {"image": image, "min_pixels": self.settings.min_pixels, "max_pixels": self.settings.max_pixels},
                **grid,
            )
        except ValueError as exc:
            raise InputError(str(exc)) from None

    def decode(self, token_ids: Sequence[Sequence[int]]) -> list[str]:
        """Decode generated ids (both engines use this, so their texts agree byte for byte)."""
        return self.tokenizer.batch_decode([list(t) for t in token_ids], skip_special_tokens=True)

    def close(self) -> None:
        """Release the engine (frees the accelerator memory)."""


def seeded_sampling_scheduler_kwargs(max_model_len: int) -> dict:
    """vLLM scheduler options that make per-request seeded sampling work on this platform (``{}`` on GPUs).

    Every request carries ``SamplingParams.seed`` (children of an ``n=N`` request get ``seed + j``), so vLLM gives
    it its own ``torch.Generator``: a request's candidates depend only on its seed, not on the batch, the order
    or an interrupted-and-resumed run. When the scheduler splits a prompt over two steps (chunked prefill: the
    token budget, ``max_num_batched_tokens``, is used up mid-prompt), vLLM discards the token sampled after the
    partial prefill and rewinds that request's generator (``gen.set_offset(gen.get_offset() - 4)`` in
    ``gpu_model_runner._bookkeeping_sync``, vLLM 0.32). CUDA's Philox generator has an offset, so on a GPU
    the rewind makes the discarded draw invisible and chunked prefill stays on (vLLM's default). A CPU
    ``torch.Generator`` (Mersenne Twister) has none and raises ``CPU Generator does not use offset``, killing the
    engine. On CPU this returns ``enable_chunked_prefill=False`` with a token budget of at least
    ``max_model_len`` (vLLM's CPU default 4096 otherwise): every prompt is then prefilled in one step, no sampled
    token is ever discarded and the generator is never rewound (see ``docs/edl.md``, "Seeded sampling").
    """
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return {}
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(int(max_model_len), 4096)}


class VLLMEngine(_Base):
    """vLLM engine (``vllm.LLM``); on CPU it needs the ``vllm-cpu`` package and an ``if __name__ == "__main__"``
    guard in the calling script (vLLM spawns its engine-core process).

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
        check_dtype(dtype)
        lora_info = check_adapter(lora, model) if lora else None  # before anything is loaded
        super().__init__(model, settings)
        self.lora_request = None
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise InputError(f"vLLM is not installed ({exc}); install vllm or use --backend hf") from None
        check_vllm_can_start(dtype, gpu_memory_utilization)
        if max_model_len is None:
            # image tokens at the pixel bound + prompt text + the generation budget
            unit = self.patch_size * 2
            max_model_len = settings.max_tokens + settings.max_pixels // (unit * unit) + 1024
        kwargs = dict(
            model=model,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            seed=settings.seed if settings.seed is not None else 0,
            max_model_len=max_model_len,
            limit_mm_per_prompt={"image": 1},
            enable_prefix_caching=True,
            mm_processor_kwargs={"min_pixels": settings.min_pixels, "max_pixels": settings.max_pixels},
            gpu_memory_utilization=gpu_memory_utilization,
            enforce_eager=enforce_eager,
            **seeded_sampling_scheduler_kwargs(max_model_len),
        )
        if lora_info is not None:  # unmerged LoRA: vLLM applies the adapter per request (LoRARequest)
            kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=vllm_max_lora_rank(lora_info.rank))
        try:
            self.llm = LLM(**kwargs)
        except (ValueError, OSError) as exc:  # unsupported architecture, too long context, no memory for the cache
            raise InputError(f"{model}: vLLM cannot serve this model ({str(exc).splitlines()[0][:300]}); check "
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

    def generate(self, images: Sequence, prompts: Sequence[str]) -> list[str]:
        """One output per (image from :meth:`prepare_image`, prompt text); order kept. Raises the engine's errors."""
        requests = [
            {"prompt": self.prompt_text(img, p), "multi_modal_data": {"image": [img]}}
            for img, p in zip(images, prompts, strict=True)
        ]
        outputs = self.llm.generate(requests, self.sampling, use_tqdm=False, lora_request=self.lora_request)
        return self.decode([o.outputs[0].token_ids for o in outputs])

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
        lora_info = check_adapter(lora, model) if lora else None  # before anything is loaded
        check_dtype(dtype)
        super().__init__(model, settings)
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

    def generate(self, images: Sequence, prompts: Sequence[str]) -> list[str]:
        """One output per (image from :meth:`prepare_image`, prompt text), one left-padded batch; order kept."""
        import torch

        s = self.settings
        texts = [self.prompt_text(img, p) for img, p in zip(images, prompts, strict=True)]
        inputs = self.processor(
            text=texts,
            images=list(images),
            padding=True,
            padding_side="left",
            return_tensors="pt",
            size={"shortest_edge": s.min_pixels, "longest_edge": s.max_pixels},
        ).to(self.device)
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
        # cut each row at its first stop token (the rest is padding)
        stops = set(self.stop_token_ids)
        cut = []
        for row in new:
            end = next((j + 1 for j, t in enumerate(row) if t in stops), len(row))
            cut.append(row[:end])
        return self.decode(cut)


def make_engine(backend: str, model: str, settings: GenerationSettings, **kwargs):
    """Build the ``vllm`` or ``hf`` engine. ``kwargs``: ``tensor_parallel_size``, ``dtype``, ``max_model_len``,
    ``gpu_memory_utilization``, ``enforce_eager`` (vLLM) / ``dtype``, ``device`` (hf); options that do not apply are ignored.
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
    raise InputError(f"unknown backend {backend!r} (choose vllm or hf)")


def default_backend() -> str:
    """``vllm`` when a CUDA GPU and vLLM are present, else ``hf`` (``scripts/predict.py --backend auto``)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return "hf"
    import torch

    return "vllm" if torch.cuda.is_available() else "hf"
