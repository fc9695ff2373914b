"""LaTeX toolkit: tokenization (pylatexenc), normalization, Tree-CoT and symbol counting.

- :mod:`unimumer.latex.tokenize`   raw LaTeX (``\\frac{a}{b}``) → space-tokenized form (``\\frac { a } { b }``)
- :mod:`unimumer.latex.normalize`  the filters and rewrites R1–R10 behind the official ``*_normalized`` test sets
- :mod:`unimumer.latex.tree`       Tree-CoT targets (iterative, byte-identical to the official tool)
- :mod:`unimumer.latex.counting`   symbol-counting targets
- :mod:`unimumer.latex.categories` the official parser's token categories and the normalizer's lists
"""
