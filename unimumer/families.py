"""The model-family registry: one entry per checkpoint ``model_type`` (``config.json``).

Each :class:`ModelFamily` holds what differs between families: the LLaMA-Factory template the configs in
``train/`` fine-tune with, whether it is a hybrid linear-attention model (vLLM scheduler options differ), the
released checkpoint's processor defaults, and the tiny offline test configuration (:mod:`unimumer.testing.tiny_models`).
A new family is one :func:`register` call here (see docs/DEVELOPING.md). Sources: the released checkpoints
(``Qwen/Qwen2.5-VL-3B-Instruct``, ``Qwen/Qwen3-VL-2B-Instruct``, ``Qwen/Qwen3.5-2B``) and ``train/*.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------------------------------- tokens
#: Special tokens shared by every Qwen2.5 / Qwen3 / Qwen3.5 checkpoint, in their real id order
#: (``<|endoftext|>`` = 151643 … ``<|video_pad|>`` = 151656 in Qwen2.5-VL / Qwen3-VL). ``special=True``.
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
#: Added (non-special) tokens that follow them in Qwen2.5 (``<tool_call>`` = 151657 …).
QWEN2_5_ADDED_TOKENS = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
#: Qwen3 / Qwen3-VL / Qwen3.5 add the tool-response and thinking tokens after those.
QWEN3_ADDED_TOKENS = QWEN2_5_ADDED_TOKENS + ("<tool_response>", "</tool_response>", "<think>", "</think>")


# Pre-tokenizer regexes of the real tokenizers (transformers' Qwen2Tokenizer / Qwen3_5Tokenizer).
_QWEN2_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
_QWEN3_5_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# --------------------------------------------------------------------------------------------------- templates
#: Qwen2.5-VL-Instruct chat template: default system message "You are a helpful assistant.", images as
#: ``<|vision_start|><|image_pad|><|vision_end|>`` (LLaMA-Factory template ``qwen2_vl``).
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Shared pieces of the Qwen3-VL / Qwen3.5 templates (no default system message; tools in the system turn).
_Q3_CONTENT = (
    "{%- if CONTENT is string %}{{- CONTENT }}{%- else %}{%- for item in CONTENT %}"
    "{%- if item.type == 'image' or 'image' in item or 'image_url' in item %}"
    "{%- set image_count.value = image_count.value + 1 %}"
    "{%- if add_vision_id %}{{- 'Picture ' ~ image_count.value ~ ': ' }}{%- endif %}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif item.type == 'video' or 'video' in item %}{%- set video_count.value = video_count.value + 1 %}"
    "{%- if add_vision_id %}{{- 'Video ' ~ video_count.value ~ ': ' }}{%- endif %}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in item %}{{- item.text }}{%- endif %}{%- endfor %}{%- endif %}"
)
_Q3_HEAD = (
    "{%- set image_count = namespace(value=0) %}{%- set video_count = namespace(value=0) %}"
    "{%- if tools %}{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].role == 'system' %}" + _Q3_CONTENT.replace("CONTENT", "messages[0].content")
    + "{{- '\\n\\n' }}{%- endif %}"
    "{{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n' }}"
    "{%- elif messages[0].role == 'system' %}{{- '<|im_start|>system\\n' }}"
    + _Q3_CONTENT.replace("CONTENT", "messages[0].content")
    + "{{- '<|im_end|>\\n' }}{%- endif %}"
)
_Q3_TOOL_CALLS = (
    "{%- if message.tool_calls %}{%- for tool_call in message.tool_calls %}"
    "{%- if (loop.first and message.content) or (not loop.first) %}{{- '\\n' }}{%- endif %}"
    "{%- if tool_call.function %}{%- set tool_call = tool_call.function %}{%- endif %}"
    "{{- '<tool_call>\\n{\"name\": \"' }}{{- tool_call.name }}{{- '\", \"arguments\": ' }}"
    "{%- if tool_call.arguments is string %}{{- tool_call.arguments }}{%- else %}"
    "{{- tool_call.arguments | tojson }}{%- endif %}{{- '}\\n</tool_call>' }}{%- endfor %}{%- endif %}"
)
_Q3_TOOL_MSG = (
    "{%- elif message.role == 'tool' %}"
    "{%- if loop.first or (messages[loop.index0 - 1].role != 'tool') %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' }}" + _Q3_CONTENT.replace("CONTENT", "message.content")
    + "{{- '\\n</tool_response>' }}"
    "{%- if loop.last or (messages[loop.index0 + 1].role != 'tool') %}{{- '<|im_end|>\\n' }}{%- endif %}"
)

#: Qwen3-VL-Instruct chat template: no default system message, no thinking block
#: (LLaMA-Factory template ``qwen3_vl_nothink``).
QWEN3_VL_CHAT_TEMPLATE = (
    _Q3_HEAD
    + "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' }}" + _Q3_CONTENT.replace("CONTENT", "message.content")
    + "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}{{- '<|im_start|>assistant\\n' }}"
    + _Q3_CONTENT.replace("CONTENT", "message.content")
    + _Q3_TOOL_CALLS
    + "{{- '<|im_end|>\\n' }}"
    + _Q3_TOOL_MSG
    + "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

#: Qwen3.5 chat template: like Qwen3-VL, plus the thinking block: previous assistant turns drop their
#: ``<think>…</think>`` part, and the generation prompt opens ``<think>\n`` (thinking, the default) or writes
#: an empty ``<think>\n\n</think>\n\n`` when ``enable_thinking=False``.
#: (LLaMA-Factory template ``qwen3_5_nothink`` trains on answers without a thinking block.)
QWEN3_5_CHAT_TEMPLATE = (
    _Q3_HEAD
    + "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' }}" + _Q3_CONTENT.replace("CONTENT", "message.content")
    + "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if message.content is string %}{%- set content = message.content %}{%- else %}"
    "{%- set content = namespace(text='') %}{%- for item in message.content %}{%- if 'text' in item %}"
    "{%- set content.text = content.text + item.text %}{%- endif %}{%- endfor %}"
    "{%- set content = content.text %}{%- endif %}"
    "{%- if '</think>' in content %}{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{{- content }}" + _Q3_TOOL_CALLS + "{{- '<|im_end|>\\n' }}"
    + _Q3_TOOL_MSG
    + "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- else %}{{- '<think>\\n' }}{%- endif %}{%- endif %}"
)



# --------------------------------------------------------------------------------------------------- families
@dataclass(frozen=True)
class ModelFamily:
    """What differs between model families, keyed by ``config.json`` ``model_type`` (:attr:`name`).

    ``template``: LLaMA-Factory template of the training configs (``None``: not trained here). ``hybrid``: Gated
    DeltaNet / Mamba-style linear-attention layers (vLLM's 'align' recurrent-state cache). ``tiny``: a tiny test
    checkpoint of the family can be built. The rest is the released checkpoint's layout: ``architecture``
    (``AutoModelForImageTextToText`` class), processor / video processor / tokenizer class names, vision
    ``patch_size``, image ``image_mean`` / ``image_std``, image-processor ``min_pixels`` / ``max_pixels`` bounds
    (pixels), the weights ``dtype`` of the tiny checkpoint, chat template, added tokens and pre-tokenizer regex.
    """

    name: str
    template: str | None = None
    hybrid: bool = False
    tiny: bool = False
    architecture: str = ""
    processor: str = ""
    video_processor: str = ""
    tokenizer_class: str = ""
    real_model: str = ""
    patch_size: int = 0
    image_mean: tuple[float, float, float] = ()
    image_std: tuple[float, float, float] = ()
    min_pixels: int = 0
    max_pixels: int = 0
    dtype: str = "float32"
    chat_template: str = ""
    added_tokens: tuple[str, ...] = ()
    pretokenize_regex: str = ""

    @property
    def llamafactory_template(self) -> str | None:
        """Alias of :attr:`template` (the name ``tiny_model.json`` records)."""
        return self.template


#: Every known family by ``model_type``.
FAMILIES: dict[str, ModelFamily] = {}


def register(family: ModelFamily) -> ModelFamily:
    """Add ``family`` to :data:`FAMILIES` (a name registered twice is a programming error)."""
    assert family.name not in FAMILIES, f"model family {family.name} registered twice"
    FAMILIES[family.name] = family
    return family


_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_HALF = (0.5, 0.5, 0.5)

register(ModelFamily("qwen2_vl", template="qwen2_vl"))
register(ModelFamily(
    "qwen2_5_vl", template="qwen2_vl", tiny=True, architecture="Qwen2_5_VLForConditionalGeneration",
    processor="Qwen2_5_VLProcessor", video_processor="Qwen2VLVideoProcessor", tokenizer_class="Qwen2Tokenizer",
    real_model="Qwen/Qwen2.5-VL-3B-Instruct", patch_size=14, image_mean=_CLIP_MEAN, image_std=_CLIP_STD,
    min_pixels=3136, max_pixels=12845056, dtype="float32", chat_template=QWEN2_5_VL_CHAT_TEMPLATE,
    added_tokens=QWEN2_5_ADDED_TOKENS, pretokenize_regex=_QWEN2_REGEX))
#: the Qwen3-VL vision stack and processor configuration Qwen3.5 shares
_QWEN3_VISION = {"processor": "Qwen3VLProcessor", "video_processor": "Qwen3VLVideoProcessor", "patch_size": 16,
                 "image_mean": _HALF, "image_std": _HALF, "min_pixels": 65536, "max_pixels": 16777216,
                 "added_tokens": QWEN3_ADDED_TOKENS}
register(ModelFamily(
    "qwen3_vl", template="qwen3_vl_nothink", tiny=True, architecture="Qwen3VLForConditionalGeneration",
    tokenizer_class="Qwen2Tokenizer", real_model="Qwen/Qwen3-VL-2B-Instruct", dtype="float32",
    chat_template=QWEN3_VL_CHAT_TEMPLATE, pretokenize_regex=_QWEN2_REGEX, **_QWEN3_VISION))
register(ModelFamily(
    "qwen3_5", template="qwen3_5_nothink", hybrid=True, tiny=True, architecture="Qwen3_5ForConditionalGeneration",
    tokenizer_class="Qwen3_5Tokenizer", real_model="Qwen/Qwen3.5-2B", dtype="bfloat16",
    chat_template=QWEN3_5_CHAT_TEMPLATE, pretokenize_regex=_QWEN3_5_REGEX, **_QWEN3_VISION))
register(ModelFamily("qwen3_5_moe", hybrid=True))
register(ModelFamily("qwen3_next", hybrid=True))


def template_for(model_type: str | None) -> str | None:
    """LLaMA-Factory template the training configs use for ``model_type`` (``None`` when unknown)."""
    family = FAMILIES.get(model_type or "")
    return family.template if family else None


def is_hybrid(model_type: str | None) -> bool:
    """Whether ``model_type`` is a hybrid linear-attention family."""
    family = FAMILIES.get(model_type or "")
    return bool(family and family.hybrid)


def tiny_families() -> dict[str, ModelFamily]:
    """The families with a tiny test configuration, by name."""
    return {name: f for name, f in FAMILIES.items() if f.tiny}
