"""ExpRate@CDM (Character Detection Matching) reproducing the official UniMERNet toolkit's decisions.

``evaluate.evaluate_cdm`` scores records; ``latex`` colour-codes tokens, ``render`` draws them (pdflatex +
pdftoppm), ``match`` pairs the boxes, ``toolkit`` declares the official versions. Design: docs/cdm.md. Source:
paper Sec. 4 (ExpRate@CDM), UniMERNet's CDM (arXiv 2409.03643). Never imports torch.
"""

from .evaluate import default_cache_dir, evaluate_cdm
from .latex import LatexError, colorize
from .toolkit import DEFAULT_TOOLKIT, PAPER_TOOLKIT, TOOLKITS, Toolkit, get_toolkit

__all__ = ["DEFAULT_TOOLKIT", "PAPER_TOOLKIT", "TOOLKITS", "LatexError", "Toolkit", "colorize", "default_cache_dir",
           "evaluate_cdm", "get_toolkit"]
