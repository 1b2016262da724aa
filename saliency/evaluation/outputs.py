"""The files of an evaluation: scores and curves as CSV, the leaderboard as JSON (for reports),
and the mean curves as a figure."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..files.outputs import write_atomic
from .metrics import CURVES, LOWER_IS_BETTER
from .run import BASELINES, Evaluation


@dataclass(frozen=True)
class Standing:
    """One method on one metric: mean and s.d. over images, and whether it is the best."""

    method: str
    metric: str
    mean: float
    sd: float
    count: int
    best: bool = False


def leaderboard(result: Evaluation) -> list[Standing]:
    """Mean ± s.d. per method and metric (and ROAD's gap, LeRF - MoRF, where both ran); the best
    method of each metric marked, baselines included."""
    metrics = list(result.metrics)
    values = {(m, k): result.values(m, k) for m in result.methods for k in metrics}
    if "road_morf" in metrics and "road_lerf" in metrics:
        metrics.append("road_gap")
        for method in result.methods:
            morf, lerf = values[(method, "road_morf")], values[(method, "road_lerf")]
            values[(method, "road_gap")] = [b - a for a, b in zip(morf, lerf, strict=True)]
    out = []
    for metric in metrics:
        rows = []
        for method in result.methods:
            found = values[(method, metric)]
            mean = sum(found) / len(found) if found else math.nan
            sd = math.sqrt(sum((v - mean) ** 2 for v in found) / len(found)) if found else math.nan
            rows.append(Standing(method, metric, mean, sd, len(found)))
        pick = min if LOWER_IS_BETTER[metric] else max
        best = pick((r.mean for r in rows if not math.isnan(r.mean)), default=math.nan)
        out += [Standing(r.method, r.metric, r.mean, r.sd, r.count, r.mean == best) for r in rows]
    return out


def write_scores(result: Evaluation, path: Path) -> None:
    """``evaluation.csv``: image, method, metric, value (six decimals: the same seed, the same
    bytes)."""
    rows = ([r["image"], r["method"], r["metric"], f"{r['value']:.6f}"] for r in result.scores)
    _csv(path, ("image", "method", "metric", "value"), rows)


def write_curves(result: Evaluation, path: Path) -> None:
    """``curves.csv``: image, method, metric, fraction, value, one row per point."""
    rows = (
        [r["image"], r["method"], r["metric"], f"{r['fraction']:.4f}", f"{r['value']:.6f}"]
        for r in result.curves
    )
    _csv(path, ("image", "method", "metric", "fraction", "value"), rows)


def write_leaderboard(result: Evaluation, path: Path) -> None:
    """``evaluation.json``: the leaderboard, for reports."""
    data = {
        "images": len(result.images),
        "baselines": list(BASELINES),
        "lower_is_better": {
            k: LOWER_IS_BETTER[k] for k in dict.fromkeys(s.metric for s in leaderboard(result))
        },
        "leaderboard": [s.__dict__ for s in leaderboard(result)],
    }
    text = json.dumps(data, indent=1)
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _csv(path: Path, header: tuple[str, ...], rows: object) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)  # type: ignore[arg-type]

    write_atomic(path, write)


def plot_curves(result: Evaluation, path: Path) -> None:
    """``evaluation.png``: per curve metric, each method's mean curve with a band of one s.d.;
    the baselines dotted."""
    from matplotlib.figure import Figure

    shown = [m for m in CURVES if m in result.metrics]
    if not shown:
        return
    figure = Figure(figsize=(4.2 * len(shown), 3.6), layout="constrained")
    axes = figure.subplots(1, len(shown), squeeze=False)[0]
    titles = {"deletion": "Deletion (lower is better)", "insertion": "Insertion (higher)",
              "road_morf": "ROAD, most relevant first (lower)",
              "road_lerf": "ROAD, least relevant first (higher)"}  # fmt: skip
    for ax, metric in zip(axes, shown, strict=True):
        for method in result.methods:
            points: dict[float, list[float]] = {}
            for row in result.curves:
                if row["method"] == method and row["metric"] == metric:
                    points.setdefault(row["fraction"], []).append(row["value"])
            xs = sorted(points)
            means = [sum(points[x]) / len(points[x]) for x in xs]
            sds = [
                math.sqrt(sum((v - m) ** 2 for v in points[x]) / len(points[x]))
                for x, m in zip(xs, means, strict=True)
            ]
            style = ":" if method in BASELINES else "-"
            (line,) = ax.plot(xs, means, style, label=method)
            low = [m - s for m, s in zip(means, sds, strict=True)]
            high = [m + s for m, s in zip(means, sds, strict=True)]
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.12, linewidth=0)
        ax.set_title(titles[metric], fontsize=10)
        ax.set_xlabel("fraction of pixels " + ("inserted" if metric == "insertion" else "removed"))
        ax.set_ylabel("probability of the explained class")
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    write_atomic(path, lambda tmp: figure.savefig(tmp, format=path.suffix[1:] or "png", dpi=110))
