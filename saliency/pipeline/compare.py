"""``compare``'s work: each photo read, explained by every chosen method and drawn, one row of
panels per photo, for :func:`~saliency.pictures.figures.save_figure` to lay out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ..api import explain_batch
from ..engine.options import MethodOptions
from ..engine.registry import get_method
from ..files.images import load_image
from ..files.inputs import InputFile
from ..models.loading import LoadedModel
from ..pictures.figures import CompareRow
from ..pictures.paint import outline
from ..pictures.render import RenderOptions, draw
from ..tasks.plan import TargetPlan

THUMBNAIL = 800  # longest side of each panel, in pixels


def compare_rows(
    loaded: LoadedModel,
    files: list[InputFile],
    methods: tuple[str, ...],
    target: TargetPlan,
    fit: str | None,
    options: RenderOptions,
    method_options: MethodOptions | None = None,
) -> Iterator[tuple[InputFile, CompareRow | str]]:
    """For each file, its row, or the reason it failed (a string)."""
    method_options = method_options or MethodOptions()
    one = target.one()  # a target object, or None for a classifier's class

    def choose(logits: torch.Tensor) -> list[Any]:
        return target.targets(logits)[:1] if one is None else [one]

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
                choose,
                method_options,
            )
        except Exception as exc:  # the model failed on this image: report it, go on
            yield file, f"model failed: {type(exc).__name__}: {exc}"
            continue
        panels = []
        for method, result in results.items():
            index = int(result.targets[0])
            size = (tensor.shape[-2], tensor.shape[-1])
            label, region = target.panel(logits, index, size, loaded.categories)
            title = method + (f" (smooth {result.smooth})" if result.smooth else "")
            picture, _ = draw(photo, get_method(method).shown(result.maps[0]), small, options)
            if region is not None:
                picture = outline(picture, region, small)
            panels.append((f"{title}\n{label}", picture))
        yield file, CompareRow(photo, panels)
