"""``compare``'s work: each photo read, explained by every chosen method and drawn, one row of
panels per photo, for :func:`~saliency.pictures.figures.save_figure` to lay out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..api import explain_batch
from ..engine.options import MethodOptions
from ..engine.registry import get_method
from ..engine.targets import TargetSpec
from ..files.images import load_image
from ..files.inputs import InputFile
from ..models.loading import LoadedModel
from ..pictures.figures import CompareRow
from ..pictures.paint import outline
from ..pictures.render import RenderOptions, draw

THUMBNAIL = 800  # longest side of each panel, in pixels


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
            label, region = _label(loaded, target, logits, index, size)
            title = method + (f" (smooth {result.smooth})" if result.smooth else "")
            picture, _ = draw(photo, get_method(method).shown(result.maps[0]), small, options)
            if region is not None:
                picture = outline(picture, region, small)
            panels.append((f"{title}\n{label}", picture))
        yield file, CompareRow(photo, panels)


def _label(
    loaded: LoadedModel,
    target: TargetSpec,
    logits: torch.Tensor,
    index: int,
    size: tuple[int, int],
) -> tuple[str, np.ndarray | None]:
    """What a panel explains, in words with its number, and the region to outline on it: a
    class and its probability; a segmentation's class and its share of the pixels (its
    region); a similarity and its cosine."""
    if target.is_similarity:
        score = float(target.similarity().score(logits.float())[0])
        return f"{target.name(index, loaded.categories)} ({score:.3f})", None
    if target.detections:  # a detector: its best detection, its box outlined
        from ..models.detection import BOX, LABEL, SCORE, box_mask

        best = logits[0, 0].float().cpu()
        if int(best[LABEL]) < 0:
            return "no detection", None
        name = target.name(int(best[LABEL]), loaded.categories)
        return f"{name} ({float(best[SCORE]):.2f})", box_mask(best[BOX], size).numpy()
    if logits.dim() == 4:  # a segmentation: the class over the pixels assigned to it
        mask = (logits[0].argmax(dim=0) == index).float()
        share = float(mask.mean())
        if tuple(mask.shape) != size:  # an output coarser than the input
            mask = torch.nn.functional.interpolate(mask[None, None], size=size)[0, 0]
        return f"{loaded.categories[index]} ({share:.1%} of pixels)", mask.cpu().numpy()
    probability = float(logits.float().softmax(1)[0, index])
    return f"{loaded.categories[index]} ({probability:.1%})", None
