"""Targets for a detector: how well its output still finds given boxes.

Both read a :class:`~saliency.Detector`'s output (B, N, 6), rows ``x1, y1, x2, y2, score,
label``, and hold reference boxes (each sample's detections on the clean photo, usually):

* :class:`BoxScoreTarget`: pytorch-grad-cam's ``FasterRCNNBoxScoreTarget``: for each reference
  box, the prediction with the highest IoU, if that IoU is above ``iou_threshold`` and its label
  is the box's, adds IoU + score. The gradient methods and the CAMs explain this.
* :class:`DRiseTarget`: the D-RISE similarity (Petsiuk et al. 2021): for each reference box, the
  best over predictions of IoU x score x cosine of the class vectors, summed over the boxes.
  torchvision's detectors keep only their best class's score per box, so a class vector is
  one-hot at the label (xaitk-saliency's advice for such detectors): the cosine is 1 for the
  same label and 0 otherwise, and the score stands for the objectness they lack.

The D-RISE similarity is also :meth:`BoxScoreTarget.confidence`: what ``drise`` (RISE) weighs
its masks by and what deletion and insertion follow, a number from 0 to 1 per box.
"""

from __future__ import annotations

import torch

from .detections import BOX, LABEL, SCORE, detections_of
from .objectives import Target

__all__ = ["BoxScoreTarget", "BoxTarget", "DRiseTarget", "box_iou"]


def box_iou(boxes: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """IoU of every box in ``boxes`` (B, M, 4) with every box in ``others`` (B, N, 4), corners
    ``x1, y1, x2, y2``, as torchvision's ``box_iou`` computes it: (B, M, N); 0 where a
    union is empty."""
    area = (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(
        min=0
    )
    area_o = (others[..., 2] - others[..., 0]).clamp(min=0) * (
        others[..., 3] - others[..., 1]
    ).clamp(min=0)
    top_left = torch.maximum(boxes[..., :, None, :2], others[..., None, :, :2])
    bottom_right = torch.minimum(boxes[..., :, None, 2:], others[..., None, :, 2:])
    sides = (bottom_right - top_left).clamp(min=0)
    inter = sides[..., 0] * sides[..., 1]
    union = area[..., :, None] + area_o[..., None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


class BoxTarget(Target):
    """What the box targets share: reference boxes (M, 4) for every sample or (B, M, 4), their
    labels (M,) or (B, M), and the D-RISE similarity to them (:meth:`drise`), which is their
    :meth:`confidence`."""

    kind = "box"
    locates = True

    def __init__(self, boxes: torch.Tensor, labels: torch.Tensor | int) -> None:
        boxes = torch.as_tensor(boxes).detach()
        if boxes.dim() == 1:
            boxes = boxes[None]
        if boxes.shape[-1] != 4 or boxes.dim() not in (2, 3):
            raise ValueError(f"boxes must be (M, 4) or (B, M, 4), got {tuple(boxes.shape)}")
        labels = torch.as_tensor(labels).detach().long()
        if labels.dim() == 0:
            labels = labels.expand(boxes.shape[-2])
        if labels.shape != boxes.shape[:-1]:
            raise ValueError(
                f"{tuple(labels.shape)} labels for boxes {tuple(boxes.shape)}: one per box"
            )
        self.boxes, self.labels = boxes, labels

    def _matched(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The predictions, the reference boxes and labels, all with the batch first."""
        found = detections_of(output)
        batch = found.shape[0]
        boxes = self.boxes.to(found.device, found.dtype)
        labels = self.labels.to(found.device)
        if boxes.dim() == 2:
            boxes, labels = boxes.expand(batch, -1, -1), labels.expand(batch, -1)
        if boxes.shape[0] != batch:
            raise ValueError(f"reference boxes for {boxes.shape[0]} samples, output for {batch}")
        return found, boxes, labels

    def drise(self, output: torch.Tensor) -> torch.Tensor:
        """The D-RISE similarity of each sample's predictions to its reference boxes (B,)."""
        found, boxes, labels = self._matched(output)
        ious = box_iou(boxes, found[..., BOX])  # (B, M, N)
        same = found[:, None, :, LABEL].long() == labels[..., None]
        similarity = ious * found[:, None, :, SCORE] * same
        if similarity.shape[-1] == 0:
            return similarity.new_zeros(found.shape[0])
        return similarity.amax(dim=-1).sum(dim=-1)

    def confidence(self, output: torch.Tensor) -> torch.Tensor:
        return self.drise(output)

    def select(self, rows: torch.Tensor) -> BoxTarget:
        if self.boxes.dim() == 2:
            return self
        copy = type(self).__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.boxes = self.boxes.to(rows.device)[rows]
        copy.labels = self.labels.to(rows.device)[rows]
        return copy

    def classes(self, batch: int, device: torch.device) -> torch.Tensor:
        labels = self.labels.to(device)
        first = labels[..., 0] if labels.shape[-1] else torch.full_like(labels[..., 0], -1)
        return first.expand(batch) if labels.dim() == 1 else first


class BoxScoreTarget(BoxTarget):
    """pytorch-grad-cam's ``FasterRCNNBoxScoreTarget`` on a :class:`~saliency.Detector`'s
    output: for each reference box, the prediction of highest IoU with it adds IoU + score if
    that IoU is above ``iou_threshold`` and its label is the box's; 0 otherwise.

    Args:
        boxes: The reference boxes ``x1, y1, x2, y2`` in the input's pixels: (M, 4) for
            every sample or (B, M, 4).
        labels: Their labels: (M,) or (B, M) (or one int for every box).
        iou_threshold: The IoU a prediction must exceed to count.
    """

    def __init__(
        self, boxes: torch.Tensor, labels: torch.Tensor | int, iou_threshold: float = 0.5
    ) -> None:
        super().__init__(boxes, labels)
        self.iou_threshold = iou_threshold

    def score(self, output: torch.Tensor) -> torch.Tensor:
        found, boxes, labels = self._matched(output)
        if found.shape[1] == 0:
            return found.new_zeros(found.shape[0])
        ious = box_iou(boxes, found[..., BOX])  # (B, M, N)
        best = ious.argmax(dim=-1, keepdim=True)  # (B, M, 1)
        iou = ious.gather(-1, best)[..., 0]
        score = found[..., SCORE][:, None, :].expand_as(ious).gather(-1, best)[..., 0]
        label = found[..., LABEL][:, None, :].expand_as(ious).gather(-1, best)[..., 0]
        counts = (iou > self.iou_threshold) & (label.long() == labels)
        return torch.where(counts, iou + score, torch.zeros_like(iou)).sum(dim=-1)


class DRiseTarget(BoxTarget):
    """The D-RISE similarity to reference boxes as the score itself (see the module's text).

    Args:
        boxes: The reference boxes: (M, 4) for every sample or (B, M, 4).
        labels: Their labels: (M,) or (B, M) (or one int for every box).
    """

    def score(self, output: torch.Tensor) -> torch.Tensor:
        return self.drise(output)
