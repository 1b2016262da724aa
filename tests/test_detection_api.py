"""Detectors in the Python API: the wrapper's output, loading by name offline, the pointing game
by hand, and what refuses what."""

from __future__ import annotations

import pytest
import torch
import torchvision

from saliency import BoxScoreTarget, Detector, DRiseTarget, ModelError, explain, load_model
from saliency.evaluation.metrics import pointing_game
from saliency.tasks.detection import TopDetection


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=5
    )
    net.roi_heads.score_thresh = 0.0
    return net.eval()


def test_the_wrapper_pads_each_image_to_the_kept_count_and_keeps_the_detectors_order() -> None:
    net, x = _net(), torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        raw = net(list(x))
        found = Detector(net, kept=150)(x)
    assert found.shape == (2, 150, 6)
    for i in range(2):
        count = len(raw[i]["scores"])
        assert 0 < count < 150
        torch.testing.assert_close(found[i, :count, :4], raw[i]["boxes"])
        torch.testing.assert_close(found[i, :count, 4], raw[i]["scores"])
        assert found[i, :count, 5].long().tolist() == raw[i]["labels"].tolist()
        assert (found[i, count:, 4] == 0).all() and (found[i, count:, 5] == -1).all()


def test_scores_are_differentiable_through_the_heads() -> None:
    net, x = _net(), torch.rand(1, 3, 96, 128).requires_grad_(True)
    found = Detector(net)(x)
    target = BoxScoreTarget(found[:, :1, :4].detach(), found[:, :1, 5].long())
    (grad,) = torch.autograd.grad(target.score(found).sum(), x)
    assert grad.abs().sum() > 0


def test_top_detection_binds_to_each_images_best_box() -> None:
    found = torch.zeros(2, 3, 6)
    found[..., 5] = -1
    found[0, 0] = torch.tensor([1.0, 2.0, 10.0, 12.0, 0.9, 3.0])
    found[1, 0] = torch.tensor([5.0, 5.0, 20.0, 30.0, 0.7, 1.0])
    bound = TopDetection().bind(found)
    assert isinstance(bound, BoxScoreTarget)
    assert bound.classes(2, torch.device("cpu")).tolist() == [3, 1]
    torch.testing.assert_close(bound.score(found), torch.tensor([1.9, 1.7]))
    torch.testing.assert_close(bound.confidence(found), torch.tensor([0.9, 0.7]))
    moved = found.clone()
    moved[0, 0, :4] = torch.tensor([6.0, 2.0, 15.0, 12.0])  # 9 x 10 each, 4 x 10 shared: IoU 40/140
    torch.testing.assert_close(bound.confidence(moved)[0], torch.tensor(0.9 * 40 / 140))
    assert float(bound.score(moved)[0]) == 0  # below the IoU threshold


def test_pointing_game_by_hand() -> None:
    values = torch.zeros(3, 8, 10)
    values[0, 2, 3] = 1  # inside (3.5, 2.5) of the box x 2..5, y 1..4
    values[1, 6, 8] = 1  # outside
    values[2, 4, 5] = 1  # centre (5.5, 4.5): outside x 2..5
    boxes = torch.tensor([[2.0, 1.0, 5.0, 4.0]]).expand(3, 4)
    assert pointing_game(values, boxes).tolist() == [1.0, 0.0, 0.0]


def test_load_by_name_builds_no_weights_it_was_not_asked_for(monkeypatch) -> None:
    monkeypatch.setenv("SALIENCY_OFFLINE", "1")
    loaded = load_model("fasterrcnn_mobilenet_v3_large_320_fpn", weights="random")
    assert loaded.task == "detection" and isinstance(loaded.model, Detector)
    assert loaded.categories[1] == "person" and loaded.input_size == 320
    assert loaded.normalization == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    with pytest.raises(ModelError, match="weights='random'"):
        load_model("fasterrcnn_resnet50_fpn_v2")
    with pytest.raises(ModelError, match="is a detection model"):
        load_model("ssd300_vgg16", weights="random", embedding=True)


def test_drise_refuses_a_target_without_boxes() -> None:
    model = torchvision.models.resnet18(num_classes=3).eval()
    with pytest.raises(ValueError, match="use rise"):
        explain(model, torch.rand(1, 3, 32, 32), "drise", masks=4)


@pytest.mark.parametrize(
    "arch", ["retinanet_resnet50_fpn", "fcos_resnet50_fpn", "ssdlite320_mobilenet_v3_large"]
)
def test_other_detectors_explain_with_gradcam_and_drise(arch: str) -> None:
    """The one-stage detectors: a map per box for a CAM on their default layer, and D-RISE."""
    torch.manual_seed(0)
    kwargs = {"min_size": 96, "max_size": 128} if not arch.startswith("ssd") else {}
    net = torchvision.models.get_model(arch, weights=None, weights_backbone=None, **kwargs)
    net.score_thresh = 0.0
    detector = Detector(net).eval()
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        found = detector(x)
    target = BoxScoreTarget(found[:, :1, :4], found[:, :1, 5].long())
    cam = explain(detector, x, "gradcam", target=target)
    assert cam.maps.shape == (1, 1, 96, 128) and cam.layer.startswith("detector.backbone")
    drise = explain(
        detector,
        x,
        "drise",
        target=DRiseTarget(found[:, :1, :4], found[:, :1, 5].long()),
        masks=8,
        cells=4,
    )
    assert drise.maps.shape == (1, 1, 96, 128) and drise.maps.abs().sum() > 0
