"""Object detectors as models with one tensor output, so that every target and method works on
them as on a classifier.

torchvision's detectors take a list of images and return a list of dicts (``boxes``, ``labels``,
``scores``), a different number of detections per image. :class:`Detector` wraps one: it takes a
batch (B, 3, H, W) of pixels in [0, 1] (the detector normalizes and resizes them itself) and
returns its detections as one tensor (B, N, 6), each row ``x1, y1, x2, y2, score, label`` in the
input's pixels, sorted by score, padded with rows of score 0 and label -1 to the detector's
``N`` = detections kept per image. The kept scores and boxes stay differentiable through the
detector's heads, which is what the gradient methods read (pytorch-grad-cam's tutorial does
the same on the raw dicts).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import torch
from torch import nn

from ..engine.detections import BOX, COLUMNS, LABEL, SCORE, box_mask, detections_of
from .preprocess import Preprocessing

__all__ = [
    "BOX", "LABEL", "SCORE", "Detector", "box_mask", "detection_names", "detections_of",
]  # fmt: skip



@cache
def detection_names() -> tuple[str, ...]:
    """torchvision's detectors (Faster R-CNN, RetinaNet, FCOS, SSD, SSDlite, Mask and
    Keypoint R-CNN, whose boxes are explained)."""
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models.detection))


def kept_per_image(model: nn.Module) -> int:
    """How many detections the detector keeps per image (its ``detections_per_img``)."""
    for owner in (model, getattr(model, "roi_heads", None)):
        kept = getattr(owner, "detections_per_img", None)
        if isinstance(kept, int):
            return kept
    return 100


class Detector(nn.Module):
    """A torchvision detector with one tensor output (see the module's text).

    Args:
        detector: A torchvision detection model (``fasterrcnn_resnet50_fpn`` and the others).
        kept: Rows per image in the output; None: the detector's own ``detections_per_img``.

    Example:
        ```python
        import torch, torchvision
        from saliency import Detector

        torch.manual_seed(0)
        net = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
            weights=None, weights_backbone=None, num_classes=3
        )
        detections = Detector(net.eval())(torch.rand(2, 3, 96, 128))
        print(tuple(detections.shape))  # (2, 100, 6)
        ```
    """

    cam_layer = "detector.backbone"  # the FPN's levels, as pytorch-grad-cam's tutorial explains

    def __init__(self, detector: nn.Module, kept: int | None = None) -> None:
        super().__init__()
        self.detector = detector
        self.kept = kept_per_image(detector) if kept is None else kept
        self.train(detector.training)  # in the mode the detector was given in

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise RuntimeError("a Detector explains its model in eval mode; call .eval() first")
        found = self.detector(list(images))
        return dense(found, self.kept, images)


def dense(found: list[dict[str, torch.Tensor]], kept: int, like: torch.Tensor) -> torch.Tensor:
    """torchvision's detections (a dict per image) as one tensor (B, kept, 6)."""
    rows = []
    for one in found:
        boxes, scores, labels = one["boxes"], one["scores"], one["labels"]
        count = min(len(scores), kept)
        table = torch.cat(
            [boxes[:count], scores[:count, None], labels[:count, None].to(boxes.dtype)], dim=1
        )
        padding = table.new_zeros(kept - count, COLUMNS)
        padding[:, LABEL] = -1
        rows.append(torch.cat([table, padding]))
    if not rows:
        return like.new_zeros(0, kept, COLUMNS)
    return torch.stack(rows)


def detection_preprocessing(model: nn.Module) -> Preprocessing:
    """A detector's input: the photo's pixels in [0, 1] (it normalizes them itself), its
    shorter side at the detector's own ``min_size`` so that its own resize changes nothing."""
    transform = getattr(model, "transform", None)
    sizes = getattr(transform, "min_size", (800,))
    size = int(sizes[-1] if isinstance(sizes, (tuple, list)) else sizes)
    return Preprocessing(size, size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "bilinear")


DETECTOR_OFFLINE_HELP = (
    "no detector's weights ship with saliency: give a local checkpoint of the architecture "
    "(weights='path/to/checkpoint.pth'), or weights='random' (seeded by seed=) to try it"
)


def build_detector(
    arch: str, tag: str | None, pretrained: bool
) -> tuple[Detector, Preprocessing, list[str]]:
    """A torchvision detector by name, wrapped, with its input and class names (COCO's, with
    ``__background__`` and the unused ``N/A`` slots at their indices). Without pretrained
    weights nothing is fetched: neither the detector's nor its backbone's."""
    import torchvision

    from ..errors import ModelError, WeightsUnavailable
    from .downloads import hub_cache, require_download
    from .zoo import weights_entry

    weights = weights_entry(arch, tag)
    categories = list(weights.meta.get("categories", []))
    if pretrained:
        try:
            require_download(weights.url, hub_cache(weights.url))
        except ModelError:
            raise WeightsUnavailable(
                f"the weights of {arch} are not cached and cannot be downloaded here",
                DETECTOR_OFFLINE_HELP,
            ) from None
        try:
            model = torchvision.models.get_model(arch, weights=weights, progress=False)
        except OSError as exc:
            why = f"could not download {arch}: {exc}"
            raise WeightsUnavailable(why, DETECTOR_OFFLINE_HELP) from None
    else:
        model = torchvision.models.get_model(arch, weights=None, weights_backbone=None)
    return Detector(model), detection_preprocessing(model), categories


def load_detector_state(detector: Detector, path: str | os.PathLike[str]) -> None:
    """A local state dict of the wrapped detector (its own keys, or a :class:`Detector`'s
    with the ``detector.`` prefix); ModelError where it does not fit."""
    from ..errors import ModelError
    from .checkpoints import load_state_dict, strip_prefixes

    state = strip_prefixes(load_state_dict(Path(path)))
    state = {k.removeprefix("detector."): v for k, v in state.items()}
    try:
        detector.detector.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        raise ModelError(f"{path} does not fit this detector: {first}") from None
