"""Comparison figures: the photo, then each method's map side by side."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .batch import TargetSpec
from .explain import forward_pass
from .images import load_image
from .inputs import InputFile
from .models import LoadedModel
from .outputs import write_atomic
from .render import RenderOptions, draw

THUMBNAIL = 800  # longest side of each panel, in pixels


@dataclass
class CompareRow:
    """One image's row: the photo and a titled panel per method."""

    photo: Image.Image
    panels: list[tuple[str, Image.Image]]


def compare_rows(
    loaded: LoadedModel,
    files: list[InputFile],
    methods: tuple[str, ...],
    target: TargetSpec,
    fit: str | None,
    options: RenderOptions,
) -> Iterator[tuple[InputFile, CompareRow | str]]:
    """For each file, its row, or the reason it failed (a string)."""
    for file in files:
        try:
            image = load_image(file.path)
            tensor, geometry = loaded.preprocess(image, fit)
        except Exception as exc:  # one bad file must not stop the others
            yield file, getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
            continue
        photo = image  # the full-size photo is not needed again: shrink it in place
        photo.thumbnail((THUMBNAIL, THUMBNAIL))
        small = geometry.scaled(photo.size)
        panels = []
        with forward_pass(loaded.model, tensor[None].to(loaded.device)) as graph:
            targets = target.targets(graph.logits)[0]
            probability = float(graph.logits.detach().softmax(1)[0, targets[0]])
            name = loaded.categories[int(targets[0])]
            for n, method in enumerate(methods):
                maps = graph.explain(method, targets, retain_graph=n < len(methods) - 1).maps
                picture, _ = draw(photo, maps[0], small, options)
                panels.append((f"{method}\n{name} ({probability:.1%})", picture))
        yield file, CompareRow(photo, panels)


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
