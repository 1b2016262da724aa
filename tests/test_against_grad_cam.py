"""The CAM family agrees with pytorch-grad-cam's own implementation of each method, on
torchvision VGG-11 and ResNet-18 at the same layer, per image, after its min-max scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM
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


@pytest.mark.parametrize("arch", ["vgg11", "resnet18"])
def test_eigencam_agrees_with_pytorch_grad_cams_projection_with_its_sign_fixed(arch: str) -> None:
    """pytorch-grad-cam's EigenCAM projects on the first principal component with whatever sign
    the SVD returns; ours turns it to agree with the mean activation. With that sign applied to
    theirs, the projections agree, and explain's map is it, cut at zero and enlarged."""
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    from saliency.engine.method import upsampled
    from saliency.methods.eigencam import principal_projection

    model, layer = _model(arch)
    x = torch.randn(3, 3, 160, 192, generator=torch.Generator().manual_seed(5))
    captured = []
    handle = dict(model.named_modules())[layer].register_forward_hook(
        lambda module, args, out: captured.append(out.detach().clone())
    )
    with torch.no_grad():
        model(x)
    handle.remove()
    (activations,) = captured
    ours = principal_projection(activations)[:, 0]
    theirs = torch.from_numpy(get_2d_projection(activations.numpy()))
    for image in range(3):
        mean = activations[image].mean(dim=0).flatten()
        a, b = ours[image].flatten(), theirs[image].flatten()
        assert float(torch.corrcoef(torch.stack([a, mean]))[0, 1]) > 0  # our sign rule
        if float(torch.corrcoef(torch.stack([b, mean]))[0, 1]) < 0:
            b = -b  # their SVD's sign, turned by the same rule
        assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) >= 0.99, (arch, image)
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3 * float(b.abs().max()))
    maps = explain(model, x, "eigencam", layer=layer).maps.detach()
    torch.testing.assert_close(maps, upsampled(principal_projection(activations), (160, 192)))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["vgg11", "resnet18"])
def test_scorecam_agrees_with_pytorch_grad_cam(arch: str) -> None:
    """One forward per channel (512 here): one small input keeps it quick."""
    model, layer = _model(arch)
    x = torch.randn(1, 3, 64, 80, generator=torch.Generator().manual_seed(5))
    result = explain(model, x, "scorecam", layer=layer, batch_size=64)
    ours, classes = result.maps.detach()[:, 0].numpy(), result.targets.tolist()
    with ScoreCAM(model=model, target_layers=[dict(model.named_modules())[layer]]) as peer:
        peer.batch_size = 64
        theirs = peer(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    for image, (a, b) in enumerate(zip(_scaled(ours), _scaled(theirs), strict=True)):
        assert a.std() > 0 and b.std() > 0, (arch, image)
        r = float(np.corrcoef(a, b)[0, 1])
        assert r >= 0.99, (arch, image, r)
