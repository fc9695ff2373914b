"""Input modes (``--preprocessing``): how a record's image and prompt become the model input.

One class per mode, registered by name in :data:`INPUT_MODES`: ``setup(engine)`` (once per engine),
``prompt_text(engine, image, prompt)``, ``prepare_image(engine, image, prompt)`` and ``fingerprint_fields`` (the
:class:`~unimumer.inference.settings.GenerationSettings` fields that change this mode's outputs besides the common
ones). ``engine`` is an engine of :mod:`unimumer.inference.engines` (processor, tokenizer, settings). The two
modes are described in docs/inference.md and in the engines' module docstring.
"""

from __future__ import annotations

from ..errors import InputError
from ..families import template_for
from ..files import IMAGE_TOKEN
from .jobs import SYSTEM_MESSAGE

INPUT_MODES: dict[str, type[InputMode]] = {}


def register(cls: type[InputMode]) -> type[InputMode]:
    """Class decorator: add an input mode under ``cls.name``."""
    INPUT_MODES[cls.name] = cls
    return cls


def input_mode(name: str) -> type[InputMode]:
    """The input mode called ``name``. Raises :class:`InputError` for an unknown one."""
    try:
        return INPUT_MODES[name]
    except KeyError:
        raise InputError(f"unknown preprocessing {name!r} (choose {' or '.join(INPUT_MODES)})") from None


def chat_messages(image, prompt: str) -> list[dict]:
    """The released evaluation's chat: system message, then one user turn holding the image and the prompt text."""
    return [
        {"role": "system", "content": SYSTEM_MESSAGE},
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]},
    ]


def official_text(prompt: str) -> str:
    """The text part of the official script's user turn: ``"<image>"`` followed by the prompt (the official script
    keeps the literal ``<image>`` in the text and adds the image as a separate content item). ``prompt`` is the
    prompt without ``<image>`` (a leading one is not doubled)."""
    return prompt if prompt.startswith(IMAGE_TOKEN) else IMAGE_TOKEN + prompt


def official_image(image, prompt: str = ""):
    """``qwen_vl_utils.process_vision_info`` over the official chat (its ``smart_resize``, factor 28,
    3,136 … 12,845,056 pixels). Raises :class:`InputError` for an image it refuses (aspect ratio above 200)."""
    from qwen_vl_utils import process_vision_info

    try:
        images, _ = process_vision_info(chat_messages(image, prompt))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return images[0]


class InputMode:
    """Base of the input modes (see the module docstring)."""

    name = ""
    fingerprint_fields: tuple[str, ...] = ()

    @staticmethod
    def setup(engine) -> None:
        """Prepare what the mode needs once per engine (nothing by default)."""

    @staticmethod
    def prompt_text(engine, image, prompt: str) -> str:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def prepare_image(engine, image, prompt: str = ""):  # pragma: no cover
        raise NotImplementedError


@register
class OfficialInput(InputMode):
    """The released evaluation (BFlameSwift/Uni-MuMER ``scripts/vllm_infer.py``): the checkpoint's chat template
    over :func:`chat_messages`, verbatim; the image through :func:`official_image`."""

    name = "official"

    @staticmethod
    def prompt_text(engine, image, prompt: str) -> str:
        return engine.processor.apply_chat_template(
            chat_messages(image, official_text(prompt)), tokenize=False, add_generation_prompt=True
        )

    @staticmethod
    def prepare_image(engine, image, prompt: str = ""):
        return official_image(image, prompt)


@register
class TrainingInput(InputMode):
    """What LLaMA-Factory fed the model in fine-tuning: its template (``--template``, default from the checkpoint's
    ``model_type``) for the human turn ``"<image>" + prompt``; the image resized by the template's ``mm_plugin`` into
    [``min_pixels``, ``max_pixels``]. Needs LLaMA-Factory."""

    name = "training"
    fingerprint_fields = ("template", "min_pixels", "max_pixels")

    @staticmethod
    def setup(engine) -> None:
        import copy

        name = engine.settings.template or template_for(engine.model_type)
        if name is None:
            raise InputError(f"{engine.model_name}: no known LLaMA-Factory template for model_type "
                             f"{engine.model_type!r}; pass --template")
        try:
            from llamafactory.data.template import TEMPLATES, get_template_and_fix_tokenizer
            from llamafactory.hparams import DataArguments
        except ImportError as exc:
            raise InputError(
                f"--preprocessing training needs LLaMA-Factory (pip install -r requirements_training.txt): {exc}"
            ) from None
        if name not in TEMPLATES:
            raise InputError(f"unknown LLaMA-Factory template {name!r}")
        engine._lf_tokenizer = copy.deepcopy(engine.tokenizer)  # the template may set eos / pad on its tokenizer
        engine._template = get_template_and_fix_tokenizer(engine._lf_tokenizer, DataArguments(template=name))
        engine.template_name = name

    @staticmethod
    def messages(prompt: str) -> list[dict]:
        """The ShareGPT human turn as LLaMA-Factory's converter hands it to the template (``<image>`` + prompt)."""
        return [{"role": "user", "content": IMAGE_TOKEN + prompt}, {"role": "assistant", "content": ""}]

    @classmethod
    def prompt_text(cls, engine, image, prompt: str) -> str:
        """LLaMA-Factory's prompt with one unexpanded ``<|image_pad|>`` (the engines expand it); cached per prompt."""
        cache = engine._prompt_cache
        if prompt not in cache:
            plugin = engine._template.mm_plugin
            expand = plugin.expand_mm_tokens
            plugin.expand_mm_tokens = False  # one placeholder: the processor / vLLM expand it from the image
            try:
                messages = plugin.process_messages(cls.messages(prompt), [None], [], [], engine.processor)
            finally:
                plugin.expand_mm_tokens = expand
            ids, _ = engine._template.encode_oneturn(engine._lf_tokenizer, messages, None, None)
            cache[prompt] = engine._lf_tokenizer.decode(ids, skip_special_tokens=False,
                                                        clean_up_tokenization_spaces=False)
        return cache[prompt]

    @staticmethod
    def prepare_image(engine, image, prompt: str = ""):
        s = engine.settings
        out = engine._template.mm_plugin._regularize_images(
            [image], image_max_pixels=s.max_pixels, image_min_pixels=s.min_pixels
        )
        return out["images"][0]
