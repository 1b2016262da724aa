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


def save_figure(rows: list[CompareRow], path: Path) -> None:
    """Draw rows as one figure and write it (PNG or PDF by the suffix), atomically."""
    from matplotlib.figure import Figure

    columns = 1 + max(len(row.panels) for row in rows)
    width, height = rows[0].photo.size
    panel_w = 3.2
    panel_h = panel_w * height / width + 0.6
    figure = Figure(figsize=(panel_w * columns, panel_h * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for r, row in enumerate(rows):
        for c, (title, picture) in enumerate([("photo", row.photo), *row.panels]):
            ax = axes[r][c]
            ax.imshow(picture)
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
        for ax in axes[r][1 + len(row.panels) :]:
            ax.set_axis_off()
    fmt = path.suffix.lstrip(".").lower()
    metadata = {"CreationDate": None} if fmt == "pdf" else {}
    write_atomic(path, lambda tmp: figure.savefig(tmp, format=fmt, dpi=150, metadata=metadata))
