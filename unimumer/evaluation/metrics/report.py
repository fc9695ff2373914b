"""The text report of the official calculator (``<stem>_results.txt``), byte for byte.

Layout of the released reports (official ``example_data/*/results/*_results.txt``): a leading empty line,
a 60-character ``=`` rule, values right-aligned in 8 columns with 4 decimals, thousands separators in the counts,
``≤`` (U+2264) in the threshold labels, the per-threshold percentages printed with 2 decimals *from the 4-decimal
rounded value* (as the official script does), and a closing ``=`` rule followed by one newline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RULE = "=" * 60


def format_report(results: Mapping[str, Any]) -> str:
    """The official text report of a result dictionary from :func:`unimumer.evaluation.metrics.evaluate`.

    Input: the official result dictionary (``total_samples``, ``mean_edit_score``, ``bleu4_score``,
    ``character_error_rate``, ``exact_match_rate``, ``error_le_{1,2,3}_rate``, ``error_threshold_stats``).
    Output: the report text, identical to the official ``TextEvaluator._format_results`` output that the released
    ``*_results.txt`` files hold. Raises ``KeyError`` if a key is missing (programming error, not user input).
    """
    r = results
    lines = [
        "",
        RULE,
        " " * 20 + "EVALUATION RESULTS",
        RULE,
        "",
        "Dataset Statistics:",
        f"  Total Samples: {r['total_samples']:,}",
        "",
        "Core Metrics:",
        f"  {'Mean Edit Score:':<23}{r['mean_edit_score']:>8.4f}%",
        f"  {'BLEU-4 Score:':<23}{r['bleu4_score']:>8.4f}%",
        f"  {'Character Error Rate:':<23}{r['character_error_rate']:>8.4f}",
        "",
        "Error Threshold Analysis:",
        f"  {'Exact Match Rate:':<23}{r['exact_match_rate']:>8.4f}% (0 errors)",
    ]
    for k in (1, 2, 3):
        lines.append(f"  {f'Error ≤ {k}:':<23}{r[f'error_le_{k}_rate']:>8.4f}%")
    lines += ["", "Detailed Error Distribution:"]
    for k in (0, 1, 2, 3):
        st = r["error_threshold_stats"][f"errors_le_{k}"]
        lines.append(f"  Errors ≤ {k}: {st['count']:>6,} samples ({st['percentage']:>6.2f}%)")
    lines += ["", RULE, ""]
    return "\n".join(lines)


def format_cdm_line(exprate_cdm: float, evaluated: int | None = None, excluded: int | None = None,
                    toolkit: str | None = None) -> str:
    """One report line for ExpRate@CDM, aligned like the core metrics, ending in a newline.

    ``format_cdm_line(84.1234, 1640, 12) == "  ExpRate@CDM:            84.1234% (1,640 evaluated, 12 excluded)\\n"``;
    with ``toolkit="2025-03"`` the parenthesis ends ``…, 12 excluded; CDM toolkit 2025-03)``.
    Appended after the official report only when ``--cdm`` is given (the report is otherwise unchanged).
    """
    line = f"  {'ExpRate@CDM:':<23}{exprate_cdm:>8.4f}%"
    if evaluated is not None:
        tail = f"; CDM toolkit {toolkit}" if toolkit else ""
        line += f" ({evaluated:,} evaluated, {excluded or 0:,} excluded{tail})"
    return line + "\n"


def format_canonical_line(canonical: float, raw: float) -> str:
    """One report line for the canonical ExpRate beside the raw one, aligned like the core metrics, ending in a
    newline: ``"  Canonical ExpRate:      12.5000% (raw 10.0000%; --canonicalize, docs/analysis.md)\n"``.
    Appended after the official report only when ``--canonicalize`` is given."""
    return f"  {'Canonical ExpRate:':<23}{canonical:>8.4f}% (raw {raw:.4f}%; --canonicalize, docs/analysis.md)\n"


def cdm_toolkit_of(cdm: Mapping[str, Any]) -> str | None:
    """The CDM toolkit version (``"2025-09"`` / ``"2025-03"``) recorded in an :func:`unimumer.evaluation.cdm.evaluate_cdm`
    result or ``<stem>_cdm.json`` (``settings.toolkit.version``), or ``None`` when it does not say."""
    settings = cdm.get("settings") if isinstance(cdm, Mapping) else None
    toolkit = settings.get("toolkit") if isinstance(settings, Mapping) else None
    version = toolkit.get("version") if isinstance(toolkit, Mapping) else None
    return version if isinstance(version, str) else None


def cdm_f1_mean(cdm: Mapping[str, Any]) -> float | None:
    """Mean CDM F1 in percent (round 4) over the samples ``evaluate_cdm`` evaluated, from its per-sample ``f1``.

    Input: the dict :func:`unimumer.evaluation.cdm.evaluate_cdm` returns (or a ``<stem>_cdm.json`` it was written to); samples
    with ``status == "gt_error"`` (ground truth did not render: excluded, F1 ``None``) are left out, a prediction that
    did not render counts with F1 0 (as in ExpRate@CDM). Output: ``100 × mean F1`` or ``None`` when no sample was
    evaluated or the dict has no ``samples``. The figure the qwen-ocr reference system reports beside ExpRate@CDM
    (CDM paper: the F1 of matched rendered symbols).
    """
    samples = cdm.get("samples") if isinstance(cdm, Mapping) else None
    if not isinstance(samples, list):
        return None
    f1 = [s["f1"] for s in samples if isinstance(s, Mapping) and s.get("status") != "gt_error"
          and isinstance(s.get("f1"), (int, float)) and not isinstance(s.get("f1"), bool)]
    return round(100.0 * sum(f1) / len(f1), 4) if f1 else None


def one_line_summary(results: Mapping[str, Any]) -> str:
    """A one-line digest (``n=986 ExpRate 82.6572% ≤1 90.3651% ≤2 93.7120% ≤3 96.4503% BLEU-4 89.1164%``)."""
    r = results
    return (
        f"n={r['total_samples']:,} ExpRate {r['exact_match_rate']:.4f}% ≤1 {r['error_le_1_rate']:.4f}% "
        f"≤2 {r['error_le_2_rate']:.4f}% ≤3 {r['error_le_3_rate']:.4f}% BLEU-4 {r['bleu4_score']:.4f}%"
    )
