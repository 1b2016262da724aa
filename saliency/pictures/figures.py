"""Comparison figures: the photo, then each method's map side by side."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..api import explain_batch
from ..engine.options import MethodOptions
from ..engine.targets import TargetSpec
from ..files.images import load_image
from ..files.inputs import InputFile
from ..files.outputs import write_atomic
from ..models.loading import LoadedModel
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
    method_options: MethodOptions | None = None,
) -> Iterator[tuple[InputFile, CompareRow | str]]:
    """For each file, its row, or the reason it failed (a string)."""
    method_options = method_options or MethodOptions()
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
        try:
            logits, (results,) = explain_batch(
                loaded,
                tensor[None].to(loaded.device),
                methods,
                lambda logits: target.targets(logits)[:1],
                method_options,
            )
        except Exception as exc:  # the model failed on this image: report it, go on
            yield file, f"model failed: {type(exc).__name__}: {exc}"
            continue
        panels = []
        probabilities = logits.float().softmax(1)[0]
        for method, result in results.items():
            index = int(result.targets[0])
            probability = float(probabilities[index])
            title = method + (f" (smooth {result.smooth})" if result.smooth else "")
            picture, _ = draw(photo, result.maps[0], small, options)
            name = loaded.categories[index]
            panels.append((f"{title}\n{name} ({probability:.1%})", picture))
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
