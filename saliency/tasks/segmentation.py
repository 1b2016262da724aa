"""Segmentation models: a class per pixel, (B, C, H, W) (torchvision's ``{"out": ...}``); a
picture per class present in an image (the model assigns it some pixels) but the background, or
for one class named, each over the pixels assigned to it, outlined on the picture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..engine.objectives import BoundOnClean, RegionTarget, Target, model_output
from .kind import Kind, Loaded, Request
from .plan import Records, TargetPlan, parse_class
from .registry import check_request, register_kind

if TYPE_CHECKING:
    import numpy as np

    from ..geometry import Geometry

BACKGROUND = "__background__"  # torchvision's name for a segmentation's background class


@dataclass(frozen=True)
class RegionPlan(TargetPlan):
    """One class (``index``) over the pixels the model assigns to it, in every image (one
    picture each, whether present or not)."""

    index: int = 0

    def targets(self, logits: torch.Tensor) -> list[torch.Tensor | Target]:
        return [RegionTarget(self.index)]

    def suffixes(self) -> list[str]:
        return [str(self.index)]

    def fingerprint(self) -> dict[str, Any]:
        return {"outline": "region"}  # its region is outlined on the picture

    def one(self) -> Target | None:
        return RegionTarget(self.index)

    def records(
        self, logits: torch.Tensor, size: tuple[int, int], rows: list[int] | None,
        geometries: list[Geometry], categories: list[str],
    ) -> Records:  # fmt: skip
        return region_records(logits, self.index, size)

    def panel(
        self, logits: torch.Tensor, index: int, size: tuple[int, int], categories: list[str]
    ) -> tuple[str, np.ndarray | None]:
        mask = (logits[0].argmax(dim=0) == index).float()
        share = float(mask.mean())
        if tuple(mask.shape) != size:  # an output coarser than the input
            mask = torch.nn.functional.interpolate(mask[None, None], size=size)[0, 0]
        return f"{categories[index]} ({share:.1%} of pixels)", mask.cpu().numpy()


@dataclass(frozen=True)
class PresentPlan(RegionPlan):
    """Each class present in an image (the model assigns it some pixels) but those in
    ``ignore`` (its background), each over its pixels: how many pictures an image gets is
    known only once the model has seen it."""

    found = True
    each = "class present"
    ignore: tuple[int, ...] = ()

    def targets(self, logits: torch.Tensor) -> list[torch.Tensor | Target]:
        def region(classes: list[int]) -> Target:
            return RegionTarget(torch.tensor(classes, device=logits.device))

        return self.found_targets(logits, region)

    def suffixes(self) -> list[str]:
        return TargetPlan.suffixes(self)

    def one(self) -> Target | None:
        return MainRegion(self.ignore)

    def present(self, logits: torch.Tensor) -> list[list[int]]:
        shown = pixel_counts(logits).cpu() > 0
        return [[c for c in row.nonzero()[:, 0].tolist() if c not in self.ignore] for row in shown]

    @property
    def nothing(self) -> str:
        return "no class present but the background"

    def records(
        self, logits: torch.Tensor, size: tuple[int, int], rows: list[int] | None,
        geometries: list[Geometry], categories: list[str],
    ) -> Records:  # fmt: skip
        assert rows is not None
        at = (logits.shape[-2], logits.shape[-1])
        return region_records(logits, torch.tensor(rows, device=logits.device), at)


def region_records(
    logits: torch.Tensor, category: int | torch.Tensor, size: tuple[int, int]
) -> Records:
    """Per image of a segmentation's output (B, C, H, W): the class's (one for all, or a
    LongTensor (B,)) mean probability over the pixels the model assigns to it (None where it
    assigns none), the row's keys (that share of the pixels and that probability), and those
    pixels as a mask (B, h, w) at the model's input ``size``, to outline on the pictures."""
    probabilities = logits.float().softmax(dim=1)
    batch = probabilities.shape[0]
    categories = torch.as_tensor(category, device=probabilities.device).long().expand(batch)
    mask = (probabilities.argmax(dim=1) == categories.view(-1, 1, 1)).float()
    share = mask.mean(dim=(1, 2)).cpu().tolist()
    chosen_map = probabilities[torch.arange(batch, device=probabilities.device), categories]
    inside = (chosen_map * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2))
    chosen = [
        None if s == 0 else round(float(p), 6) for s, p in zip(share, inside.cpu(), strict=True)
    ]
    keys = [
        {"pixel_share": round(s, 6), "region_probability": c}
        for s, c in zip(share, chosen, strict=True)
    ]
    if tuple(mask.shape[-2:]) != size:  # an output coarser than the input
        mask = torch.nn.functional.interpolate(mask[:, None], size=size, mode="nearest")[:, 0]
    return Records(list(chosen), keys, mask.bool())


def pixel_counts(logits: torch.Tensor) -> torch.Tensor:
    """Per image of a segmentation's output (B, C, H, W), how many pixels the model assigns to
    each class (its argmax): a LongTensor (B, C)."""
    assigned = logits.detach().argmax(dim=1).flatten(1)  # (B, H*W)
    counts = torch.zeros(
        assigned.shape[0], logits.shape[1], device=assigned.device, dtype=torch.long
    )
    return counts.scatter_add_(1, assigned, torch.ones_like(assigned))


class MainRegion(BoundOnClean):
    """Each image's main class over its region: the class the model assigns the most pixels
    to on the clean input, leaving out those in ``ignore`` (its background) unless it assigns
    nothing else. Bound once on the clean output, as a :class:`RegionTarget`."""

    kind = "region"

    def __init__(self, ignore: tuple[int, ...] = ()) -> None:
        self.ignore = ignore

    def bind(self, output: torch.Tensor) -> Target:
        counts = pixel_counts(model_output(output))
        others = counts.clone()
        others[:, list(self.ignore)] = -1
        main = torch.where(others.max(dim=1).values > 0, others.argmax(dim=1), counts.argmax(dim=1))
        return RegionTarget(main).bind(output)



@register_kind
class Segmentation(Kind):
    name = "segmentation"
    summary = "a class per pixel (B, C, H, W): each class present, or one named, over its pixels"
    order = 20

    def recognizes(self, source: str, arch: str) -> bool:
        from ..models.zoo import segmentation_names

        return source == "torchvision" and arch in segmentation_names()

    def plan(self, loaded: Loaded, request: Request) -> RegionPlan:
        check_request(self, loaded, request)
        choice = parse_class(request.target, loaded.categories)
        if choice.kind == "top1":
            background = tuple(i for i, name in enumerate(loaded.categories) if name == BACKGROUND)
            return PresentPlan(ignore=background)
        if choice.kind == "class":
            return RegionPlan(choice.index)
        raise ValueError(
            f"{loaded.name} is a segmentation model: it explains each class present in an image "
            "(the default) or one class named with --target (an index or a name), not topk"
        )
