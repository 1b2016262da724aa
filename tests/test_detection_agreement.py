"""Detectors: Grad-CAM and Eigen-CAM on a Faster R-CNN's feature pyramid agree with
pytorch-grad-cam's (its ``FasterRCNNBoxScoreTarget`` and ``fasterrcnn_reshape_transform``), and
D-RISE given the same masks equals the D-RISE formula written out here."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from pytorch_grad_cam import EigenCAM, GradCAM
from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget
from pytorch_grad_cam.utils.reshape_transforms import fasterrcnn_reshape_transform
from torch import nn

from saliency import BoxScoreTarget, Detector, DRiseTarget, explain
from saliency.engine.boxes import box_iou
from saliency.engine.method import upsampled
from saliency.engine.readers import pyramid
from saliency.methods.eigencam import principal_projection
from saliency.methods.rise import rise_masks

from .test_beyond_classifiers import SAMPLES

SIZE = (160, 208)


def _photos() -> torch.Tensor:
    """Two sample photos with people, pixels in [0, 1] (a detector normalizes them itself)."""
    photos = []
    for name in ("astronaut.jpg", "grace_hopper.jpg"):
        image = Image.open(SAMPLES / name).convert("RGB").resize(SIZE[::-1])
        photos.append(torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1))
    return torch.stack(photos)


def _detector() -> nn.Module:
    """A seeded Faster R-CNN (ResNet-50 FPN) at a small size, its batch-norm statistics set
    from the photos (a random net's are meaningless), every box kept."""
    torch.manual_seed(0)
    net = torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, min_size=SIZE[0], max_size=SIZE[1]
    )
    net.roi_heads.score_thresh = 0.0
    net.train()
    with torch.no_grad():  # calibrate the statistics on the photos (train mode needs targets)
        net.backbone(net.transform(list(_photos()))[0].tensors)
    return net.eval()


class _Levels(OrderedDict):
    """A pyramid's levels as views of one tensor, so that pytorch-grad-cam's gradient hook
    (it hooks tensor outputs only) gets every level's gradient at once."""

    def __init__(self, levels: OrderedDict) -> None:
        keys, values = list(levels), list(levels.values())
        self._shapes = [v.shape for v in values]
        self._sizes = [v[0].numel() for v in values]
        self._joined = torch.cat([v.flatten(1) for v in values], 1)
        parts = self._joined.split(self._sizes, 1)
        super().__init__(
            (k, p.reshape(s)) for k, p, s in zip(keys, parts, self._shapes, strict=True)
        )

    @property
    def requires_grad(self) -> bool:
        return self._joined.requires_grad

    def register_hook(self, fn):  # noqa: ANN001, ANN201
        keys = list(self)

        def split(grad: torch.Tensor) -> None:
            parts = grad.split(self._sizes, 1)
            fn(
                OrderedDict(
                    (k, p.reshape(s)) for k, p, s in zip(keys, parts, self._shapes, strict=True)
                )
            )

        return self._joined.register_hook(split)


class _Joined(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.out_channels = backbone.out_channels

    def forward(self, x: torch.Tensor) -> _Levels:
        return _Levels(self.backbone(x))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _first_boxes(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        found = Detector(net).eval()(x)
    return found[:, :1, :4], found[:, :1, 5].long()


def test_gradcam_on_the_pyramid_equals_pytorch_grad_cams() -> None:
    net, x = _detector(), _photos()
    boxes, labels = _first_boxes(net, x)
    ours = explain(Detector(net), x, "gradcam", target=BoxScoreTarget(boxes, labels))
    assert ours.layer == "detector.backbone"
    net.backbone = _Joined(net.backbone)
    targets = [
        FasterRCNNBoxScoreTarget(labels=labels[i], bounding_boxes=boxes[i]) for i in range(2)
    ]
    with GradCAM(net, [net.backbone], reshape_transform=fasterrcnn_reshape_transform) as peer:
        theirs = peer(input_tensor=x, targets=targets)
    for i in range(2):
        a = ours.maps[i, 0].detach().numpy()
        assert a.std() > 0 and theirs[i].std() > 0
        assert _pearson(a, theirs[i]) >= 0.99, i


def test_eigencam_on_the_pyramid_equals_pytorch_grad_cams() -> None:
    """Their projection's sign is the SVD's; ours agrees with the mean activation: where
    theirs came out the other way, ours turned the same way matches it."""
    net, x = _detector(), _photos()
    boxes, labels = _first_boxes(net, x)
    target = BoxScoreTarget(boxes, labels)  # Eigen-CAM reads none, but the class default fails
    ours = explain(Detector(net), x, "eigencam", target=target).maps.detach()
    levels = net.backbone(net.transform(list(x))[0].tensors)
    flipped = upsampled(-principal_projection(pyramid(list(levels.values()))), SIZE).detach()
    targets = [
        FasterRCNNBoxScoreTarget(labels=labels[i], bounding_boxes=boxes[i]) for i in range(2)
    ]
    with EigenCAM(net, [net.backbone], reshape_transform=fasterrcnn_reshape_transform) as peer:
        theirs = peer(input_tensor=x, targets=targets)
    for i in range(2):
        r = max(_pearson(ours[i, 0].numpy(), theirs[i]), _pearson(flipped[i, 0].numpy(), theirs[i]))
        assert abs(r) >= 0.99, i


def test_box_score_target_is_pytorch_grad_cams() -> None:
    """The same number as the peer's target on the raw detections, IoU and label rules alike,
    for boxes that match, that match another label, and that match nothing."""
    net, x = _detector(), _photos()
    with torch.no_grad():
        raw = net(list(x))
        ours = Detector(net).eval()(x)
    refs = torch.tensor([[10.0, 10.0, 90.0, 120.0], [0.0, 0.0, 5.0, 5.0]])
    for i in range(2):
        kept = raw[i]["boxes"][:3]
        for labels in (raw[i]["labels"][:3], raw[i]["labels"][:3] + 1):
            boxes = torch.cat([kept, refs])
            every = torch.cat([labels, torch.tensor([1, 2])])
            peer = FasterRCNNBoxScoreTarget(every, boxes)(raw[i])
            mine = BoxScoreTarget(boxes, every).score(ours[i : i + 1])
            torch.testing.assert_close(mine, peer.reshape(1), rtol=1e-6, atol=1e-6)


def test_drise_equals_the_formula_given_the_same_masks() -> None:
    """drise = sum_i s_i M_i / (masks * p), s_i the D-RISE similarity of the masked photo's
    detections to the reference box: max over predictions of IoU * score * [same label]
    (one-hot class vectors' cosine), computed here with torchvision's box_iou."""
    net, x = _detector(), _photos()[:1]
    boxes, labels = _first_boxes(net, x)
    count, cells, p, seed = 12, 4, 0.5, 7
    ours = explain(
        Detector(net), x, "drise", target=DRiseTarget(boxes, labels),
        masks=count, cells=cells, p=p, seed=seed, batch_size=5,
    ).maps.detach()  # fmt: skip
    masks = rise_masks(torch.arange(count), SIZE, count, cells, p, seed)
    expected = torch.zeros(1, *SIZE, dtype=torch.float64)
    for mask in masks:
        with torch.no_grad():
            found = net([x[0] * mask])[0]
        iou = torchvision.ops.box_iou(boxes[0], found["boxes"])[0]
        same = (found["labels"] == labels[0, 0]).double()
        s = (iou.double() * found["scores"].double() * same).max() if len(iou) else 0.0
        expected += s * mask.double()
    expected /= count * p
    error = (ours[0].double() - expected).norm() / expected.norm()
    assert expected.abs().max() > 0 and float(error) <= 1e-5


def test_box_iou_is_torchvisions() -> None:
    a = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 12.0]]])
    b = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [2.0, 3.0, 4.0, 9.0], [0.0, 0.0, 0.0, 0.0]]])
    torch.testing.assert_close(box_iou(a, b)[0], torchvision.ops.box_iou(a[0], b[0]))


def test_a_box_target_refuses_a_classifier() -> None:
    model = torchvision.models.resnet18(num_classes=4).eval()
    with pytest.raises(ValueError, match="detector's output"):
        explain(model, torch.rand(1, 3, 64, 64), "gradient", target=BoxScoreTarget(
            torch.tensor([[0.0, 0.0, 9.0, 9.0]]), 1
        ))  # fmt: skip
