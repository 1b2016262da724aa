"""The CAM family agrees with pytorch-grad-cam's own implementation of each method, on
torchvision VGG-11 and ResNet-18 at the same layer, per image, after its min-max scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from saliency import explain

PEERS = {
    "gradcam": GradCAM,
    "gradcam_plus_plus": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "hirescam": HiResCAM,
}


def _model(arch: str) -> tuple[torch.nn.Module, str]:
    torch.manual_seed(3)
    if arch == "vgg11":
        model = torchvision.models.vgg11(num_classes=10)
        layer = "features"
    else:
        model = torchvision.models.resnet18(num_classes=10)
        layer = "layer4"
    for module in model.modules():  # trained-looking statistics, so maps are not degenerate
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval(), layer


def _scaled(maps: np.ndarray) -> np.ndarray:
    flat = maps.reshape(maps.shape[0], -1)
    low, high = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    return (flat - low) / np.where(high > low, high - low, 1.0)


@pytest.mark.parametrize("arch", ["vgg11", "resnet18"])
@pytest.mark.parametrize("method", sorted(PEERS))
def test_cams_agree_with_pytorch_grad_cam(arch: str, method: str) -> None:
    model, layer = _model(arch)
    x = torch.randn(3, 3, 160, 192, generator=torch.Generator().manual_seed(5))
    result = explain(model, x, method, layer=layer)  # each image's top-1 class
    ours, classes = result.maps.detach()[:, 0].numpy(), result.targets.tolist()
    target = dict(model.named_modules())[layer]
    with PEERS[method](model=model, target_layers=[target]) as peer:
        theirs = peer(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    assert theirs.shape == ours.shape
    for image, (a, b) in enumerate(zip(_scaled(ours), _scaled(theirs), strict=True)):
        assert a.std() > 0 and b.std() > 0, (method, arch, image)  # a map, not a blank
        r = float(np.corrcoef(a, b)[0, 1])
        assert r >= 0.99, (method, arch, image, r)
