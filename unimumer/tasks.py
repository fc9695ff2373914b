"""The task registry: one place that defines every Uni-MuMER task.

Each :class:`Task` carries the exact prompt (official prompt / training files), the dataset-name suffix,
the target builder and the answer extractor. Data building (``preprocess/``), inference post-processing
(``scripts/vllm_infer.py``) and dataset naming (``data/dataset_info.json``, ``train/*.yaml``) all read it from here.

Tasks (paper Sec. 3): ``vanilla`` recognition, ``tree`` (Tree-CoT), ``can`` (symbol counting), and the two
error-driven-learning (EDL) tasks ``error_find`` (error detection) and ``error_fix`` (error correction).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from .errors import InputError

_HME_INTRO = "I have an image of a handwritten mathematical expression."
_EDL_INTRO = "I have an image of a handwritten mathematical expression and its OCR recognition result."


@dataclass(frozen=True)
class Task:
    """One training / inference task.

    Attributes:
        name: registry key (``vanilla``, ``tree``, ``can``, ``error_find``, ``error_fix``).
        suffix: appended to a base dataset name (``crohme_train`` → ``crohme_train_tree``); ``""`` for vanilla.
        instruction: the exact instruction sentence(s) that follow ``<image>`` in the human turn.
        field_template: what follows the instruction for tasks with a text input (EDL), ``str.format`` style.
        target_builder: ``"module:function"`` that builds the gpt turn (imported lazily).
        answer: how the final LaTeX is read from a model output: ``"whole"`` (stripped text) or ``"last_line"``
            (last non-empty line, for outputs that put reasoning first).
    """

    name: str
    suffix: str
    instruction: str
    field_template: str
    target_builder: str
    answer: str

    def prompt(self, **fields: str) -> str:
        """The human-turn text without ``<image>``: instruction + the formatted field template.

        Raises :class:`InputError` if a field the template needs is missing.
        """
        try:
            return self.instruction + self.field_template.format(**fields)
        except KeyError as exc:
            raise InputError(f"task {self.name!r} needs the prompt field {exc.args[0]!r}") from None

    def builder(self) -> Callable:
        """The target-builder function (see each module for its signature)."""
        module, func = self.target_builder.split(":")
        return getattr(importlib.import_module(module), func)

    def extract_answer(self, output: str) -> str:
        """The final LaTeX of a model output (official ``*_pred.json``).

        ``whole``: ``output.strip()``; ``last_line``: the last non-empty line, stripped (``""`` if none).
        """
        if self.answer == "whole":
            return output.strip()
        for line in reversed(output.splitlines()):
            if line.strip():
                return line.strip()
        return ""


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "vanilla",
            "",
            f"{_HME_INTRO} Please write out the expression of the formula in the image using LaTeX format.",
            "",
            "unimumer.tasks:vanilla_target",
            "whole",
        ),
        Task(
            "tree",
            "_tree",
            f"{_HME_INTRO} Please generate the abstract syntax tree (AST) of the formula in the image, "
            "and then provide its corresponding LaTeX format.",
            "",
            "unimumer.latex.tree:build_tree_target",
            "last_line",
        ),
        Task(
            "can",
            "_can",
            f"{_HME_INTRO} Please identify and count each distinct visible mathematical symbol in the image, "
            "and then provide its corresponding LaTeX format.",
            "",
            "unimumer.latex.counting:build_count_target",
            "last_line",
        ),
        Task(
            "error_find",
            "_error_find",
            f"{_EDL_INTRO} Please help me to detect possible errors in the recognition result and mark the places "
            "where errors occur with <error_start> <error_end> and <deleted>.",
            "\nExpression: {candidate}",
            "unimumer.edl.marking:build_error_find",
            "whole",
        ),
        Task(
            "error_fix",
            "_error_fix",
            f"{_EDL_INTRO} Please correct the errors marked <error_start> <error_end> and <deleted> and give the "
            "correct mathematical expression.",
            "\nMarked Expression: {marked}",
            "unimumer.edl.marking:build_error_fix",
            "last_line",
        ),
    )
}

#: Tasks whose targets are built from ground truth alone (``preprocess/build_training_data.py``).
GT_TASKS = ("vanilla", "tree", "can")
#: Error-driven-learning tasks, built from (gt, wrong prediction) pairs (``preprocess/make_error_data.py``).
EDL_TASKS = ("error_find", "error_fix")

# Official dataset names that do not follow base + suffix (official ``train/*.yaml``).
_NAME_EXCEPTIONS = {
    ("hme100k_train", "error_find"): "hme100k_error_find",
    ("hme100k_train", "error_fix"): "hme100k_error_fix",
    ("im2latex_v2_train", "error_find"): "im2latex_v2_error_find",
    ("im2latex_v2_train", "error_fix"): "im2latex_v2_error_fix",
}


def get_task(name: str) -> Task:
    """The registered task ``name``. Raises :class:`InputError` listing the valid names."""
    try:
        return TASKS[name]
    except KeyError:
        raise InputError(f"unknown task {name!r} (choose from {', '.join(TASKS)})") from None


def vanilla_target(latex: str) -> str:
    """Vanilla recognition target: the (space-tokenized) LaTeX itself, stripped."""
    return latex.strip()


def dataset_name(base: str, task: str) -> str:
    """Official LLaMA-Factory dataset name of ``task`` data built from the base set ``base``.

    ``dataset_name("crohme_train", "tree") == "crohme_train_tree"``; the official exceptions are kept
    (``dataset_name("hme100k_train", "error_fix") == "hme100k_error_fix"``).
    """
    t = get_task(task)
    return _NAME_EXCEPTIONS.get((base, task), base + t.suffix)


def check_dataset_base_name(name: str, flag: str = "--name") -> str:
    """Validate a base dataset name (``crohme_train``), the one check every data builder uses; returns ``name``.

    Raises :class:`InputError` when it is empty, holds a path separator or whitespace, or ends in ``.json``
    (a file name, not a LLaMA-Factory dataset name).
    """
    if (not isinstance(name, str) or not name or any(c.isspace() or c in "/\\" for c in name)
            or name.endswith(".json")):
        raise InputError(f"{flag} {name!r}: expected a plain dataset base name such as crohme_train")
    return name


def task_for_prompt(prompt: str) -> Task:
    """The task whose instruction starts ``prompt`` (``<image>`` prefix allowed).

    Used by inference to choose the answer extractor when ``--task`` is not given. Raises :class:`InputError`
    when no registered instruction matches.
    """
    text = prompt[len("<image>"):] if prompt.startswith("<image>") else prompt
    for t in sorted(TASKS.values(), key=lambda t: -len(t.instruction)):
        if text.startswith(t.instruction):
            return t
    raise InputError(f"prompt matches no registered task: {text[:80]!r}")
