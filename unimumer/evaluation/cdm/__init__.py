"""ExpRate@CDM: a fast Character Detection Matching evaluator that reproduces the official UniMERNet toolkit's
decisions (TeX Live + poppler, no ImageMagick/KaTeX/Node).

- :func:`evaluate_cdm` (:mod:`unimumer.evaluation.cdm.evaluate`): records with ``gt``/``pred`` → ExpRate@CDM, per-sample
  recall / precision / F1 (the ``scripts/cdm_eval.py`` CLI: :mod:`unimumer.commands.cdm`);
- :mod:`unimumer.evaluation.cdm.latex`: colour-coding of every visible token (the token rules are documented there);
- :mod:`unimumer.evaluation.cdm.render`: batched pdflatex + pdftoppm rendering, per-token boxes by exact colour;
- :mod:`unimumer.evaluation.cdm.match`: Hungarian assignment + the official iterative RANSAC spatial check (``mode="official"``,
  default) or a stricter layout-aware variant (``mode="strict"``), F1.
- :mod:`unimumer.evaluation.cdm.toolkit`: the official toolkit versions reproduced, one :class:`Toolkit` declaration each
  (``toolkit="2025-09"``, default, or ``"2025-03"``, the version behind the Uni-MuMER paper's ExpRate@CDM).

Definition: paper Sec. 4 (ExpRate@CDM), after UniMERNet's CDM (arXiv 2409.03643). Never imports
torch; scipy, scikit-image and tqdm are imported lazily.
"""

from .evaluate import default_cache_dir, evaluate_cdm
from .latex import LatexError, colorize
from .toolkit import DEFAULT_TOOLKIT, PAPER_TOOLKIT, TOOLKITS, Toolkit, get_toolkit

__all__ = ["DEFAULT_TOOLKIT", "PAPER_TOOLKIT", "TOOLKITS", "LatexError", "Toolkit", "colorize", "default_cache_dir",
           "evaluate_cdm", "get_toolkit"]
