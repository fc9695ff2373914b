"""The PNG charts of an error analysis (``breakdowns.png``, ``confusions.png``; matplotlib, imported lazily)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...files import atomic_write_bytes
from .features import FAMILIES, FAMILY_TITLES


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def render_breakdown_png(analysis: Mapping[str, Any], name: str) -> bytes:
    """PNG bytes: one panel per bucket family, ExpRate per bucket (A and B bars with a comparison), n on the axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comp = analysis.get("comparison")
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, fam in zip(axes.flat, FAMILIES, strict=True):
        rows = comp["buckets"][fam] if comp else analysis["buckets"][fam]
        labels = [f"{r['bucket'].replace(' ', chr(10))}\n(n={r['n']})" for r in rows]
        xs = list(range(len(rows)))
        if comp:
            ya = [r["exprate_a"] if r["exprate_a"] is not None else math.nan for r in rows]
            yb = [r["exprate_b"] if r["exprate_b"] is not None else math.nan for r in rows]
            ax.bar([x - 0.2 for x in xs], ya, 0.4, label="A")
            ax.bar([x + 0.2 for x in xs], yb, 0.4, label="B")
            ax.legend(fontsize="small")
        else:
            ax.bar(xs, [r["exprate"] if r["exprate"] is not None else math.nan for r in rows], 0.6)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, fontsize="small")
        ax.set_ylim(0, 100)
        ax.set_ylabel("ExpRate (%)")
        ax.set_title(FAMILY_TITLES[fam], fontsize="medium")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"ExpRate by bucket: {name}")
    return _png(fig)


def render_confusions_png(analysis: Mapping[str, Any], name: str, top: int = 20) -> bytes:
    """PNG bytes: horizontal bars of the ``top`` most frequent substitutions gt → pred (A and B with a comparison)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comp = analysis.get("comparison")
    rows = comp["confusions"][:top] if comp else analysis["confusions"][:top]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.32 * len(rows) + 1.2)))
    labels = [f"{r['gt']} → {r['pred']}" for r in rows]
    ys = list(range(len(rows)))[::-1]
    if comp:
        ax.barh([y + 0.2 for y in ys], [r["count_a"] for r in rows], 0.4, label="A")
        ax.barh([y - 0.2 for y in ys], [r["count_b"] for r in rows], 0.4, label="B")
        ax.legend(fontsize="small")
    else:
        ax.barh(ys, [r["count"] for r in rows], 0.6)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize="small")
    ax.set_xlabel("substitutions")
    ax.set_title(f"Top {len(rows)} confusions (gt → pred): {name}", fontsize="medium")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def write_plots(analysis: Mapping[str, Any], out_dir: Path, name: str, top: int = 20) -> list[str]:
    """Write ``breakdowns.png`` and ``confusions.png`` into ``out_dir`` (atomically); returns the file names."""
    atomic_write_bytes(out_dir / "breakdowns.png", render_breakdown_png(analysis, name))
    atomic_write_bytes(out_dir / "confusions.png", render_confusions_png(analysis, name, top))
    return ["breakdowns.png", "confusions.png"]
