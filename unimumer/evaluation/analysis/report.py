"""The Markdown report (``report.md``) of an error analysis and its comparison."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .features import FAMILIES, FAMILY_TITLES


def _f(x: Any, fmt: str = ".2f") -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return format(x, fmt)
    return str(x)


def _signed(x: Any) -> str:
    return "–" if x is None else f"{x:+.2f}"


def _md_tok(t: str) -> str:
    return "`" + t.replace("|", "\\|") + "`"


def _md_text(t: str, limit: int = 80) -> str:
    t = t if len(t) <= limit else t[: limit - 1] + "…"
    return "`" + t.replace("`", "'").replace("|", "\\|") + "`"


def render_report(name: str, analysis: Mapping[str, Any], *, top: int = 20, plots: Sequence[str] = ()) -> str:
    """The Markdown report of one analysis (and its comparison, when present). ``plots`` are PNG file names
    (relative to the report) to embed."""
    m = analysis["metrics"]
    out = [f"# Error analysis: {name}", "",
           f"Input: `{analysis['input']}` — {analysis['records']} records. ExpRate {_f(m['exact_match_rate'])} %, "
           f"≤1 {_f(m['error_le_1_rate'])} %, ≤2 {_f(m['error_le_2_rate'])} % (official calculator).", ""]
    et = analysis["edit_totals"]
    out += [f"Token errors (EDL alignment): {et['substitutions']} substitutions, {et['insertions']} insertions "
            f"(extra pred tokens), {et['deletions']} deletions (missing gt tokens); total = summed token edit "
            f"distance {et['distance']}.", ""]
    comp = analysis.get("comparison")
    if comp:
        mc = comp["mcnemar"]
        cm = comp["metrics"]
        out += ["## Comparison", "",
                f"A = `{analysis['input']}`, B = `{comp['against']}` ({comp['paired_records']} records paired by "
                "img_id). Differences are B − A.", "",
                "| metric | A | B | B − A |", "|---|---:|---:|---:|"]
        for k, label in (("exact_match_rate", "ExpRate"), ("error_le_1_rate", "≤1"), ("error_le_2_rate", "≤2")):
            out.append(f"| {label} | {_f(cm[k]['a'])} | {_f(cm[k]['b'])} | {_signed(cm[k]['diff'])} |")
        out += ["", f"Fixed by B: **{len(comp['fixed'])}**, broken by B: **{len(comp['broken'])}**, both exact "
                f"{mc['both_exact']}, neither {mc['neither_exact']}. McNemar ({mc['test']}): "
                f"p = {mc['p_value']:.4g}.", ""]
    out += ["## Breakdowns", "", "Buckets are computed on the gt; rates in %.", ""]
    for fam in FAMILIES:
        out += [f"### {FAMILY_TITLES[fam]}", ""]
        if comp:
            out += ["| bucket | n | ExpRate A | ExpRate B | Δ | ≤1 A | ≤1 B | ≤2 A | ≤2 B |",
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for r in comp["buckets"][fam]:
                out.append(f"| {r['bucket']} | {r['n']} | {_f(r['exprate_a'])} | {_f(r['exprate_b'])} | "
                           f"{_signed(r['exprate_diff'])} | {_f(r['error_le_1_rate_a'])} | "
                           f"{_f(r['error_le_1_rate_b'])} | {_f(r['error_le_2_rate_a'])} | "
                           f"{_f(r['error_le_2_rate_b'])} |")
        else:
            out += ["| bucket | n | exact | ExpRate | ≤1 | ≤2 |", "|---|---:|---:|---:|---:|---:|"]
            for r in analysis["buckets"][fam]:
                out.append(f"| {r['bucket']} | {r['n']} | {r['exact']} | {_f(r['exprate'])} | "
                           f"{_f(r['error_le_1_rate'])} | {_f(r['error_le_2_rate'])} |")
        out.append("")
    cs = analysis["confusion_score"]
    out += ["## Confusions", "", f"Top {top} aligned substitutions (gt → pred):", "",
            "| gt | pred | count |", "|---|---|---:|"]
    out += [f"| {_md_tok(r['gt'])} | {_md_tok(r['pred'])} | {r['count']} |" for r in analysis["confusions"][:top]]
    out += ["", "Most frequent insertions (extra pred tokens): "
            + (", ".join(f"{_md_tok(r['pred'])} {r['count']}" for r in analysis["insertions"][:10]) or "none") + ".",
            "", "Most frequent deletions (missing gt tokens): "
            + (", ".join(f"{_md_tok(r['gt'])} {r['count']}" for r in analysis["deletions"][:10]) or "none") + ".",
            "", f"**Letter–digit confusion score (top {cs['top_k']}): {cs['score']:.2f}** — {cs['definition']}. "
            "Pairs: " + (", ".join(f"{r['pair']} {r['score']:.2f} ({r['count']})" for r in cs["pairs"][: cs["top_k"]])
                         or "none") + ".", ""]
    if comp:
        ccs = comp["confusion_score"]
        out += [f"Confusion score A {ccs['score_a']:.2f} → B {ccs['score_b']:.2f} ({_signed(ccs['diff'])}); pairs: "
                + (", ".join(f"{r['pair']} {_signed(r['diff'])}" for r in ccs["pairs"]) or "none") + ".", "",
                f"Confusions that changed most (top {top} by |B − A|):", "",
                "| gt | pred | A | B | B − A |", "|---|---|---:|---:|---:|"]
        changed = sorted((r for r in comp["confusions"] if r["diff"]),
                         key=lambda r: (-abs(r["diff"]), r["gt"], r["pred"]))[:top]
        out += [f"| {_md_tok(r['gt'])} | {_md_tok(r['pred'])} | {r['count_a']} | {r['count_b']} | {r['diff']:+d} |"
                for r in changed]
        out.append("")
        for title, items in (("Fixed by B", comp["fixed"]), ("Broken by B", comp["broken"])):
            out += [f"### {title} ({len(items)}; first {min(len(items), top)}, all in analysis.json)", ""]
            if items:
                out += ["| img_id | gt | pred A | pred B |", "|---|---|---|---|"]
                out += [f"| {r['img_id']} | {_md_text(r['gt'])} | {_md_text(r['pred_a'])} | {_md_text(r['pred_b'])} |"
                        for r in items[:top]]
            out.append("")
    if plots:
        out += ["## Charts", ""] + [f"![{p}]({p})" for p in plots] + [""]
    out += ["## Definitions", "", DEFINITIONS_MD]
    return "\n".join(out)


DEFINITIONS_MD = """\
- Tokens, distance, exact match, ≤ k: the official calculator's (`str.split()` tokens, token Levenshtein distance d;
  exact = d = 0). Bucket exact counts add up to the calculator's ExpRate numerator.
- Confusions: rapidfuzz `Levenshtein.opcodes(pred, gt)` on the tokens, the EDL builder's alignment; each aligned
  replaced position is one substitution gt → pred; insertions are extra pred tokens (EDL DELETE), deletions missing
  gt tokens (EDL INSERT).
- Letter–digit confusion score: substitutions between a digit and a Latin letter (single-character tokens, both
  directions) per 100 records, summed over the top-k pairs (our reading of the paper's "top-5 confusion score").
- gt length: tokens of the gt. Depth: deepest level of the gt's Tree-CoT tree (0 = flat; unparsable = rejected by the
  official parser). Structure kinds (overlapping): fraction (`\\frac` `\\dfrac` `\\tfrac` `\\cfrac`), root (`\\sqrt`),
  scripts (`^` `_`), matrix (any `\\begin` environment), big operator (`\\sum` `\\lim` `\\int` `\\iint` `\\oint`
  `\\prod` `\\coprod`). Max symbol repetition: largest count in the gt's symbol-counting target (every token but
  `{` `}`).
- Comparison: records paired by img_id (same gt required); fixed = exact only in B, broken = exact only in A;
  McNemar: exact two-sided binomial test when fixed + broken < 25, else chi-square with continuity correction (1 df).
"""
