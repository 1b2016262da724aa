"""Files of a sanity run: its table (CSV), verdicts (JSON), metric curves (Adebayo et al. 2018,
Fig. 4) and map strips (Fig. 2)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..files.outputs import write_atomic
from .sanity import SanityResult, Verdict
from .sanity_metrics import METRICS

CSV_COLUMNS = ("image", "method", "step", "layer", "metric", "value")
_TITLES = {
    "spearman_abs": "Spearman rank correlation, |map|",
    "spearman": "Spearman rank correlation, signed map",
    "ssim": "SSIM, normalized |map|",
    "hog": "HOG feature correlation",
}


def write_csv(result: SanityResult, path: Path) -> None:
    """``sanity.csv``: one row per image, method, step and metric (step 0: random-map baseline)."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            for row in result.rows:
                writer.writerow({**row, "value": f"{float(row['value']):.6f}"})  # type: ignore[arg-type]

    write_atomic(path, write)


def write_verdicts(found: list[Verdict], path: Path) -> None:
    """``sanity.json``: each method's verdict, for reports (see :func:`.sanity.verdicts`)."""
    data = {
        "verdicts": [
            {
                "method": v.method,
                "first": list(v.first),
                "last": list(v.last),
                "baseline": v.baseline,
                "threshold": v.threshold,
                "passes": v.passes,
            }
            for v in found
        ]
    }
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1), encoding="utf-8"))


def plot_metrics(result: SanityResult, path: Path) -> None:
    """Each metric against the randomized steps: per method the mean over images and a band of
    one standard deviation, starting from the original model (1.0); dotted lines mark each
    method's random-map baseline. PNG or PDF by the suffix."""
    from matplotlib.figure import Figure

    steps = [step.name for step in result.steps]
    x = np.arange(len(steps) + 1)
    figure = Figure(figsize=(max(8.0, 0.45 * len(x) * 2 + 2), 8.5), layout="constrained")
    axes = figure.subplots(2, 2, sharex=True).ravel()
    colours = {m: f"C{i}" for i, m in enumerate(result.methods)}
    for ax, metric in zip(axes, METRICS, strict=True):
        for method in result.methods:
            values = result.values(method, metric)
            values = np.concatenate([np.ones((values.shape[0], 1)), values], axis=1)
            mean, spread = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
            colour = colours[method]
            ax.plot(x, mean, marker="o", markersize=3, color=colour, label=method)
            ax.fill_between(x, mean - spread, mean + spread, color=colour, alpha=0.15, lw=0)
            ax.axhline(float(np.nanmean(result.baseline(method, metric))), color=colour, ls=":")
        ax.set_title(_TITLES[metric], fontsize=10)
        ax.set_ylim(-0.3, 1.05)
        ax.grid(alpha=0.3)
        ax.set_xticks(x, ["original", *steps], rotation=90, fontsize=7)
    axes[0].legend(fontsize=8, loc="lower left")
    figure.suptitle(
        f"{result.mode} randomization, from the logits down ({len(result.images)} images; "
        "band: ±1 s.d.; dotted: random-map baseline)",
        fontsize=10,
    )
    _save(figure, path)


def plot_strip(result: SanityResult, image: str, path: Path) -> None:
    """The maps of one image: a row per method, the original model then each randomized step."""
    from matplotlib.figure import Figure

    strips = result.strips[image]
    columns = 1 + len(result.steps)
    rows = len(result.methods)
    first = strips[result.methods[0]][0]
    aspect = first.shape[0] / first.shape[1]
    figure = Figure(figsize=(1.1 * columns + 1.2, 1.1 * aspect * rows + 1.2), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    titles = ["original", *(step.name for step in result.steps)]
    for r, method in enumerate(result.methods):
        for c, thumb in enumerate(strips[method]):
            ax = axes[r][c]
            ax.imshow(thumb, cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=7, rotation=45, ha="left", loc="left")
            if c == 0:
                ax.set_ylabel(method, fontsize=8)
    figure.suptitle(f"{image}: |map| as the model is randomized ({result.mode})", fontsize=9)
    _save(figure, path)


def _save(figure: object, path: Path) -> None:
    fmt = path.suffix.lstrip(".").lower()
    metadata = {"CreationDate": None} if fmt == "pdf" else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(
        path,
        lambda tmp: figure.savefig(tmp, format=fmt, dpi=120, metadata=metadata),  # type: ignore[attr-defined]
    )
