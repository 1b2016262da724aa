"""Comparison figures: the photo, then each method's map side by side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..files.outputs import write_atomic


@dataclass
class CompareRow:
    """One image's row: the photo and a titled panel per method."""

    photo: Image.Image
    panels: list[tuple[str, Image.Image]]


COLUMNS = 6  # panels a line by default: 20 methods in one line made a figure 8160 pixels wide


def save_figure(rows: list[CompareRow], path: Path, columns: int = COLUMNS) -> None:
    """Draw rows as one figure and write it (PNG or PDF by the suffix), atomically. Each
    image's photo and panels wrap into lines of ``columns`` panels (0: one line each)."""
    import math

    from matplotlib.figure import Figure

    widest = 1 + max(len(row.panels) for row in rows)
    per_line = min(widest, columns) if columns > 0 else widest
    lines = [math.ceil((1 + len(row.panels)) / per_line) for row in rows]
    width, height = rows[0].photo.size
    panel_w = 3.2
    panel_h = panel_w * height / width + 0.6
    figure = Figure(figsize=(panel_w * per_line, panel_h * sum(lines)), layout="constrained")
    axes = figure.subplots(sum(lines), per_line, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    first = 0
    for row, count in zip(rows, lines, strict=True):
        for n, (title, picture) in enumerate([("photo", row.photo), *row.panels]):
            ax = axes[first + n // per_line][n % per_line]
            ax.imshow(picture)
            ax.set_title(title, fontsize=9)
        first += count
    fmt = path.suffix.lstrip(".").lower()
    metadata = {"CreationDate": None} if fmt == "pdf" else {}
    write_atomic(path, lambda tmp: figure.savefig(tmp, format=fmt, dpi=150, metadata=metadata))
